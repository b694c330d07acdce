//! Circles in a graph of files: the strongly connected components of more
//! than one file (Tarjan), each with one loop through it and every edge that
//! ties it, so a failure says which imports to cut.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;

/// Import edges between files, with the names each edge uses.
pub(crate) type Edges = BTreeMap<(PathBuf, PathBuf), BTreeSet<String>>;

/// One circle: its files (sorted), one loop through all or some of them, and
/// the edges inside it.
pub(crate) struct Circle {
    pub(crate) files: Vec<PathBuf>,
    pub(crate) loop_path: Vec<PathBuf>,
    pub(crate) edges: Vec<(PathBuf, PathBuf, BTreeSet<String>)>,
}

/// Every circle of `edges`, in file order.
pub(crate) fn circles(edges: &Edges) -> Vec<Circle> {
    let mut next: BTreeMap<&PathBuf, Vec<&PathBuf>> = BTreeMap::new();
    for (from, to) in edges.keys() {
        next.entry(from).or_default().push(to);
        next.entry(to).or_default();
    }
    let mut tarjan = Tarjan {
        next: &next,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        components: Vec::new(),
    };
    for node in next.keys() {
        if !tarjan.index.contains_key(node) {
            tarjan.visit(node);
        }
    }
    let mut out: Vec<Circle> = tarjan
        .components
        .into_iter()
        .filter(|c| c.len() > 1)
        .map(|mut files| {
            files.sort();
            let inside: BTreeSet<&PathBuf> = files.iter().collect();
            let edges = edges
                .iter()
                .filter(|((a, b), _)| inside.contains(a) && inside.contains(b))
                .map(|((a, b), names)| (a.clone(), b.clone(), names.clone()))
                .collect();
            let loop_path = shortest_loop(&files[0], &next, &inside);
            Circle {
                files,
                loop_path,
                edges,
            }
        })
        .collect();
    out.sort_by(|a, b| a.files.cmp(&b.files));
    out
}

struct Tarjan<'a> {
    next: &'a BTreeMap<&'a PathBuf, Vec<&'a PathBuf>>,
    index: BTreeMap<&'a PathBuf, usize>,
    low: BTreeMap<&'a PathBuf, usize>,
    stack: Vec<&'a PathBuf>,
    on_stack: BTreeSet<&'a PathBuf>,
    components: Vec<Vec<PathBuf>>,
}

impl<'a> Tarjan<'a> {
    fn visit(&mut self, node: &'a PathBuf) {
        let n = self.index.len();
        self.index.insert(node, n);
        self.low.insert(node, n);
        self.stack.push(node);
        self.on_stack.insert(node);
        for &to in self.next.get(node).into_iter().flatten() {
            if !self.index.contains_key(to) {
                self.visit(to);
                let low = self.low[node].min(self.low[to]);
                self.low.insert(node, low);
            } else if self.on_stack.contains(to) {
                let low = self.low[node].min(self.index[to]);
                self.low.insert(node, low);
            }
        }
        if self.low[node] == self.index[node] {
            let mut component = Vec::new();
            while let Some(top) = self.stack.pop() {
                self.on_stack.remove(top);
                component.push(top.clone());
                if top == node {
                    break;
                }
            }
            self.components.push(component);
        }
    }
}

/// The shortest walk from `start` back to itself inside the circle.
fn shortest_loop(
    start: &PathBuf,
    next: &BTreeMap<&PathBuf, Vec<&PathBuf>>,
    inside: &BTreeSet<&PathBuf>,
) -> Vec<PathBuf> {
    let mut came_from: BTreeMap<&PathBuf, &PathBuf> = BTreeMap::new();
    let mut queue = VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for &to in next.get(node).into_iter().flatten() {
            if !inside.contains(to) {
                continue;
            }
            if to == start {
                let mut walk = vec![node.clone()];
                let mut at = node;
                while at != start {
                    at = came_from[at];
                    walk.push(at.clone());
                }
                walk.reverse();
                walk.push(start.clone());
                return walk;
            }
            if !came_from.contains_key(to) {
                came_from.insert(to, node);
                queue.push_back(to);
            }
        }
    }
    vec![start.clone()]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn edges(pairs: &[(&str, &str)]) -> Edges {
        pairs
            .iter()
            .map(|(a, b)| ((PathBuf::from(a), PathBuf::from(b)), BTreeSet::new()))
            .collect()
    }

    #[test]
    fn tidy_a_chain_has_no_circle() {
        assert!(circles(&edges(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
    }

    #[test]
    fn tidy_a_circle_is_found_with_a_loop_through_it() {
        let found = circles(&edges(&[("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]));
        assert_eq!(found.len(), 1);
        let names = |v: &[PathBuf]| {
            v.iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
        };
        assert_eq!(names(&found[0].files), ["a", "b", "c"]);
        assert_eq!(names(&found[0].loop_path), ["a", "b", "c", "a"]);
        assert_eq!(found[0].edges.len(), 3, "c -> d is outside the circle");
    }

    #[test]
    fn tidy_two_circles_are_two() {
        let found = circles(&edges(&[("a", "b"), ("b", "a"), ("c", "d"), ("d", "c")]));
        assert_eq!(found.len(), 2);
    }
}
