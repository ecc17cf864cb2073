"""An object version's lineage as a small inline SVG, drawn on the server: the sources it
was copied from (left) -> the version (middle) -> the copies made from it (right). Nodes
the signed-in user may not read are drawn without a name."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from s3facade.console.html import Html, tag

WIDTH, BOX_W, BOX_H, GAP = 780, 220, 54, 16
COLUMNS = (20, (WIDTH - BOX_W) // 2, WIDTH - BOX_W - 20)
MAX_LABEL = 30


@dataclass(frozen=True)
class Node:
    title: str  # "s3://bucket/key" or a stand-in for a hidden node
    detail: str  # version id, digest
    href: str | None  # its console page, when the user may read it
    css: str  # "source", "self", "copy" or "hidden"


def lineage_svg(sources: Sequence[Node], center: Node, copies: Sequence[Node]) -> Html:
    rows = max(len(sources), len(copies), 1)
    height = rows * (BOX_H + GAP) + GAP
    middle_y = (height - BOX_H) // 2
    parts: list[Html] = [
        tag(
            "defs",
            None,
            tag(
                "marker",
                {
                    "id": "arrow",
                    "viewBox": "0 0 10 10",
                    "refX": "10",
                    "refY": "5",
                    "markerWidth": "8",
                    "markerHeight": "8",
                    "orient": "auto-start-reverse",
                },
                tag("path", {"d": "M 0 0 L 10 5 L 0 10 z", "class": "arrowhead"}),
            ),
        )
    ]
    for column, nodes, into_center in ((0, sources, True), (2, copies, False)):
        top = (height - len(nodes) * (BOX_H + GAP) + GAP) // 2
        for index, node in enumerate(nodes):
            y = top + index * (BOX_H + GAP)
            if into_center:
                start, end = (COLUMNS[0] + BOX_W, y + BOX_H // 2), (COLUMNS[1], middle_y + 27)
            else:
                start, end = (COLUMNS[1] + BOX_W, middle_y + 27), (COLUMNS[2], y + BOX_H // 2)
            parts.append(_edge(start, end))
            parts.append(_box(COLUMNS[column], y, node))
    parts.append(_box(COLUMNS[1], middle_y, center))
    return tag(
        "svg",
        {
            "xmlns": "http://www.w3.org/2000/svg",
            "viewBox": f"0 0 {WIDTH} {height}",
            "width": str(WIDTH),
            "height": str(height),
            "role": "img",
            "aria-label": f"lineage: {len(sources)} source(s), {len(copies)} copy(ies)",
            "class": "lineage",
            "id": "lineage-graph",
        },
        *parts,
    )


def _edge(start: tuple[int, int], end: tuple[int, int]) -> Html:
    return tag(
        "line",
        {
            "x1": str(start[0]),
            "y1": str(start[1]),
            "x2": str(end[0]),
            "y2": str(end[1]),
            "class": "edge",
            "marker-end": "url(#arrow)",
        },
    )


def _box(x: int, y: int, node: Node) -> Html:
    shape = tag(
        "g",
        {"class": f"node {node.css}"},
        tag("title", None, f"{node.title}\n{node.detail}"),
        tag(
            "rect",
            {"x": str(x), "y": str(y), "width": str(BOX_W), "height": str(BOX_H), "rx": "6"},
        ),
        tag("text", {"x": str(x + 10), "y": str(y + 22)}, _clip(node.title)),
        tag("text", {"x": str(x + 10), "y": str(y + 42), "class": "detail"}, _clip(node.detail)),
    )
    if node.href is None:
        return shape
    return tag("a", {"href": node.href}, shape)


def _clip(text: str) -> str:
    return text if len(text) <= MAX_LABEL else text[: MAX_LABEL - 1] + "…"
