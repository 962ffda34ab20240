//! [`Cursor`]: `BTreeMap` lookups for keys that usually come in ascending, nearby order.
//!
//! Used by the gates (a rack's components) and the plan (a run's targets in dispatch order).

use std::collections::BTreeMap;
use std::ops::Bound;

/// Looks keys up in a `BTreeMap` when successive keys are usually close together (a rack's
/// components, a run's targets in dispatch order): it walks a range iterator forward a few
/// steps and seeks afresh only when the next key is farther away or behind. Same answers as
/// `get`.
pub(crate) struct Cursor<'m, K, V> {
    map: &'m BTreeMap<K, V>,
    iter: Option<std::iter::Peekable<std::collections::btree_map::Range<'m, K, V>>>,
}

impl<'m, K: Ord, V> Cursor<'m, K, V> {
    const MAX_STEPS: usize = 4;

    /// A cursor over `map`.
    pub fn new(map: &'m BTreeMap<K, V>) -> Self {
        Self { map, iter: None }
    }

    /// The value of `key`, if present.
    pub fn get(&mut self, key: &K) -> Option<&'m V> {
        let map = self.map;
        let seek = || map.range::<K, _>((Bound::Included(key), Bound::Unbounded)).peekable();
        let iter = self.iter.get_or_insert_with(seek);
        let mut steps = 0;
        while let Some((next, _)) = iter.peek() {
            if *next >= key {
                break;
            }
            if steps == Self::MAX_STEPS {
                *iter = seek();
                break;
            }
            iter.next();
            steps += 1;
        }
        match iter.peek() {
            Some((next, value)) if *next == key => {
                let value = *value;
                iter.next();
                Some(value)
            }
            // Absent, or behind the cursor (keys out of order): ask the map and start over.
            _ => {
                *iter = seek();
                map.get(key)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::Cursor;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

        /// The cursor answers exactly like `BTreeMap::get`, whatever the query order.
        #[test]
        fn cursor_agrees_with_get(
            keys in prop::collection::btree_set(0u32..200, 0..80),
            queries in prop::collection::vec(0u32..210, 0..60),
        ) {
            let map: BTreeMap<u32, u32> = keys.iter().map(|k| (*k, k * 10)).collect();
            let mut cursor = Cursor::new(&map);
            for q in &queries {
                prop_assert_eq!(cursor.get(q), map.get(q));
            }
            let mut sorted = queries.clone();
            sorted.sort_unstable();
            let mut cursor = Cursor::new(&map);
            for q in &sorted {
                prop_assert_eq!(cursor.get(q), map.get(q));
            }
        }
    }
}
