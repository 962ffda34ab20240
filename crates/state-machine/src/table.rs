//! Transition tables as data, and their renderings (Mermaid state diagram, plain table, JSON).

use serde::{Deserialize, Serialize};

/// One legal transition: in `from`, event `event` leads to `to`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// Status before.
    pub from: String,
    /// Event kind.
    pub event: String,
    /// Status after.
    pub to: String,
}

/// A machine's whole transition table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransitionTable {
    /// Machine name.
    pub machine: String,
    /// Initial status.
    pub initial: String,
    /// Every status.
    pub states: Vec<String>,
    /// Absorbing statuses.
    pub terminal: Vec<String>,
    /// Every event kind.
    pub events: Vec<String>,
    /// Legal transitions.
    pub transitions: Vec<Transition>,
}

impl TransitionTable {
    /// The transition for (`from`, `event`), if legal.
    pub fn lookup(&self, from: &str, event: &str) -> Option<&Transition> {
        self.transitions.iter().find(|t| t.from == from && t.event == event)
    }

    /// Event kinds legal from `from`, in table order, without repeats.
    pub fn allowed_events(&self, from: &str) -> Vec<&str> {
        let mut events: Vec<&str> = Vec::new();
        for t in self.transitions.iter().filter(|t| t.from == from) {
            if !events.contains(&t.event.as_str()) {
                events.push(&t.event);
            }
        }
        events
    }

    /// A Mermaid `stateDiagram-v2`.
    pub fn to_mermaid(&self) -> String {
        let mut out = String::from("stateDiagram-v2\n");
        out.push_str(&format!("    [*] --> {}\n", self.initial));
        for t in &self.transitions {
            out.push_str(&format!("    {} --> {}: {}\n", t.from, t.to, t.event));
        }
        for terminal in &self.terminal {
            out.push_str(&format!("    {terminal} --> [*]\n"));
        }
        out
    }

    /// A plain aligned table: from, event, to.
    pub fn to_plain_table(&self) -> String {
        let width_from = self.transitions.iter().map(|t| t.from.len()).max().unwrap_or(4).max(4);
        let width_event = self.transitions.iter().map(|t| t.event.len()).max().unwrap_or(5).max(5);
        let mut out = format!("{:<width_from$}  {:<width_event$}  TO\n", "FROM", "EVENT");
        for t in &self.transitions {
            out.push_str(&format!(
                "{:<width_from$}  {:<width_event$}  {}\n",
                t.from, t.event, t.to
            ));
        }
        out
    }
}
