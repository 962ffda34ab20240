//! Prints every machine's transition table (service, run, target, task) as a Mermaid state
//! diagram and as a plain table: `cargo run -p steward-state-machine --example tables`.
//! With an argument (`service`, `run`, `target` or `task`) it prints only that machine.

use steward_state_machine::{
    Machine, RunMachine, ServiceTable, TargetMachine, TaskMachine, TransitionTable,
};

fn main() {
    let tables: [(&str, TransitionTable); 4] = [
        ("service", ServiceTable::default().to_table()),
        ("run", RunMachine::table()),
        ("target", TargetMachine::table()),
        ("task", TaskMachine::table()),
    ];
    let only = std::env::args().nth(1);
    if let Some(name) = &only
        && !tables.iter().any(|(n, _)| n == name)
    {
        eprintln!("unknown machine {name:?}; expected one of: service, run, target, task");
        std::process::exit(2);
    }
    for (name, table) in &tables {
        if only.as_deref().is_some_and(|o| o != *name) {
            continue;
        }
        println!("## {name}\n");
        println!(
            "initial: {}; terminal: {}\n",
            table.initial,
            if table.terminal.is_empty() { "none".to_string() } else { table.terminal.join(", ") }
        );
        println!("```mermaid\n{}```\n", table.to_mermaid());
        println!("```\n{}```\n", table.to_plain_table());
    }
}
