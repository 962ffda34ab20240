//! Transition tables as data, and their renderings (Mermaid state diagram, plain table, JSON).

use serde::Serialize;

/// One legal transition: in `from`, event `event` leads to `to`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Transition {
    /// Status before.
    pub from: &'static str,
    /// Event kind.
    pub event: &'static str,
    /// Status after.
    pub to: &'static str,
}

/// A machine's whole transition table.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TransitionTable {
    /// Machine name.
    pub machine: &'static str,
    /// Initial status.
    pub initial: &'static str,
    /// Every status.
    pub states: Vec<&'static str>,
    /// Absorbing statuses.
    pub terminal: Vec<&'static str>,
    /// Every event kind.
    pub events: Vec<&'static str>,
    /// Legal transitions.
    pub transitions: Vec<Transition>,
}

impl TransitionTable {
    /// The transition for (`from`, `event`), if legal.
    pub fn lookup(&self, from: &str, event: &str) -> Option<&Transition> {
        self.transitions.iter().find(|t| t.from == from && t.event == event)
    }

    /// Event kinds legal from `from`, in table order, without repeats.
    pub fn allowed_events(&self, from: &str) -> Vec<&'static str> {
        let mut events: Vec<&'static str> = Vec::new();
        for t in self.transitions.iter().filter(|t| t.from == from) {
            if !events.contains(&t.event) {
                events.push(t.event);
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
