//! A small directed graph drawn as inline SVG (left to right, one column per depth), with a
//! text form of its edges: a Glue workflow's triggers, jobs and crawlers with their states.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde_json::Value;

use super::{Bundle, escape, text};

/// One box of the graph.
pub struct GraphNode {
    pub id: String,
    /// What it is (shown small above the name): `trigger`, `job`, `crawler`.
    pub kind: String,
    pub name: String,
    /// A state (colours the box), or None for a node not reached.
    pub state: Option<String>,
}

const WIDTH: usize = 170;
const HEIGHT: usize = 52;
const GAP_X: usize = 50;
const GAP_Y: usize = 18;

/// Each node's column: the longest path to it from a node nothing points at (a cycle is cut
/// where it closes).
fn depths(nodes: &[GraphNode], edges: &[(String, String)]) -> Vec<usize> {
    let index: BTreeMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
    let mut depth = vec![0usize; nodes.len()];
    // Relaxing every edge n times finds the longest paths of a DAG; the cap ends cycles.
    for _ in 0..nodes.len() {
        let mut changed = false;
        for (from, to) in edges {
            if let (Some(&a), Some(&b)) = (index.get(from.as_str()), index.get(to.as_str()))
                && depth[b] < depth[a] + 1
                && depth[a] + 1 < nodes.len()
            {
                depth[b] = depth[a] + 1;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    depth
}

fn fill(state: Option<&str>) -> (&'static str, &'static str) {
    match state {
        Some("SUCCEEDED" | "COMPLETED") => ("#d4edda", "#1e7e34"),
        Some("FAILED" | "ERROR" | "TIMEOUT") => ("#f8d7da", "#bd2130"),
        Some("RUNNING" | "STARTING") => ("#cce5ff", "#0062cc"),
        Some("STOPPED" | "STOPPING") => ("#fff3cd", "#856404"),
        Some(_) => ("#e2e3e5", "#383d41"),
        None => ("#ffffff", "#6c757d"),
    }
}

/// The graph as SVG (HTML) and as text, one edge a line.
pub fn graph(title: &str, nodes: &[GraphNode], edges: &[(String, String)]) -> Bundle {
    let depth = depths(nodes, edges);
    let mut rows = vec![0usize; nodes.len() + 1];
    let mut at = Vec::with_capacity(nodes.len());
    for &d in &depth {
        at.push((d, rows[d]));
        rows[d] += 1;
    }
    let columns = depth.iter().max().map_or(0, |d| d + 1);
    let tallest = rows.iter().copied().max().unwrap_or(0);
    let width = columns * (WIDTH + GAP_X) + 10;
    let height = tallest * (HEIGHT + GAP_Y) + 10;
    let pos = |i: usize| (10 + at[i].0 * (WIDTH + GAP_X), 10 + at[i].1 * (HEIGHT + GAP_Y));
    let index: BTreeMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();

    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"lakebook-graph\" width=\"{width}\" height=\"{height}\" viewBox=\"0 0 {width} {height}\" font-family=\"sans-serif\" font-size=\"12\">\
         <defs><marker id=\"lakebook-arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#6c757d\"/></marker></defs>"
    );
    for (from, to) in edges {
        let (Some(&a), Some(&b)) = (index.get(from.as_str()), index.get(to.as_str())) else { continue };
        let ((ax, ay), (bx, by)) = (pos(a), pos(b));
        let _ = write!(
            svg,
            "<line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#6c757d\" stroke-width=\"1.5\" marker-end=\"url(#lakebook-arrow)\"/>",
            ax + WIDTH,
            ay + HEIGHT / 2,
            bx,
            by + HEIGHT / 2
        );
    }
    for (i, node) in nodes.iter().enumerate() {
        let (x, y) = pos(i);
        let (background, border) = fill(node.state.as_deref());
        let dash = if node.kind == "trigger" { " stroke-dasharray=\"4 3\"" } else { "" };
        let _ = write!(
            svg,
            "<g><title>{}</title><rect x=\"{x}\" y=\"{y}\" width=\"{WIDTH}\" height=\"{HEIGHT}\" rx=\"6\" fill=\"{background}\" stroke=\"{border}\"{dash}/>\
             <text x=\"{}\" y=\"{}\" fill=\"#6c757d\" font-size=\"10\">{}</text>\
             <text x=\"{}\" y=\"{}\" font-weight=\"bold\">{}</text>\
             <text x=\"{}\" y=\"{}\" fill=\"{border}\" font-size=\"11\">{}</text></g>",
            escape(&node.id),
            x + 8,
            y + 13,
            escape(&node.kind),
            x + 8,
            y + 29,
            escape(&shorten(&node.name, 24)),
            x + 8,
            y + 44,
            escape(node.state.as_deref().unwrap_or("not run")),
        );
    }
    svg.push_str("</svg>");

    let label = |n: &GraphNode| match &n.state {
        Some(s) => format!("{} [{s}]", n.id),
        None => n.id.clone(),
    };
    let mut plain = format!("{title}\n");
    for (from, to) in edges {
        if let (Some(&a), Some(&b)) = (index.get(from.as_str()), index.get(to.as_str())) {
            let _ = writeln!(plain, "  {} ─▶ {}", label(&nodes[a]), label(&nodes[b]));
        }
    }
    for (i, node) in nodes.iter().enumerate() {
        if !edges.iter().any(|(a, b)| a == &node.id || b == &node.id) {
            let _ = writeln!(plain, "  {}", label(&nodes[i]));
        }
    }
    let mut bundle = text(plain.trim_end());
    bundle.insert("text/html".into(), Value::String(format!("<div class=\"lakebook-graph\"><div><b>{}</b></div>{svg}</div>", escape(title))));
    bundle
}

fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max - 1).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(id: &str, state: Option<&str>) -> GraphNode {
        let (kind, name) = id.split_once(':').unwrap();
        GraphNode { id: id.into(), kind: kind.into(), name: name.into(), state: state.map(Into::into) }
    }

    #[test]
    fn columns_follow_the_longest_path_and_text_lists_edges() {
        let nodes = vec![node("trigger:start", Some("FIRED")), node("crawler:raw", Some("SUCCEEDED")), node("trigger:then", None), node("job:clean", None)];
        let edges: Vec<(String, String)> = [("trigger:start", "crawler:raw"), ("crawler:raw", "trigger:then"), ("trigger:then", "job:clean"), ("trigger:start", "job:clean")]
            .iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect();
        assert_eq!(depths(&nodes, &edges), [0, 1, 2, 3]);
        let bundle = graph("workflow w", &nodes, &edges);
        let plain = bundle["text/plain"].as_str().unwrap();
        assert!(plain.contains("trigger:start [FIRED] ─▶ crawler:raw [SUCCEEDED]"), "{plain}");
        let html = bundle["text/html"].as_str().unwrap();
        assert_eq!(html.matches("<rect").count(), 4);
        assert_eq!(html.matches("<line").count(), 4);
        assert!(html.contains("#d4edda"), "a succeeded node is green");
        // A cycle ends instead of looping.
        let cyclic = vec![("trigger:start".to_string(), "crawler:raw".to_string()), ("crawler:raw".to_string(), "trigger:start".to_string())];
        assert!(depths(&nodes[..2], &cyclic).iter().all(|&d| d < 2));
    }
}
