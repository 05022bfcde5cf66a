"""The HTML of the morning report's extra sections (``pipeline.run.nights``).

Their row labels are ``td.who``, not ``th``: a ``th`` is how the report's own
table (and whatever reads it, like the browser tests) names a cloud's row."""

from __future__ import annotations

import html
from typing import Any

COLOURS = {"build": "#7aa6d6", "convert": "#9bc49b", "local_boot": "#e0b66a",
           "upload": "#c28ad6", "verify": "#e08a8a", "retention": "#aaaaaa"}
e = html.escape


def render_timeline(bars: dict[str, list[dict[str, Any]]]) -> str:
    """One row per cloud, each stage a bar on a shared time axis (seconds)."""
    span = max((s["end"] for segs in bars.values() for s in segs), default=0) or 1
    rows = []
    for cloud, segments in sorted(bars.items()):
        divs = "".join(
            f'<div class="bar {e(s["stage"])}{" failed" if s.get("failed") else ""}" '
            f'title="{e(s["stage"])}{" (failed)" if s.get("failed") else ""}: {s["start"]:g}–'
            f'{s["end"]:g} s" style="left:{100 * s["start"] / span:.2f}%;'
            f'width:{max(100 * (s["end"] - s["start"]) / span, 0.4):.2f}%;'
            f'background:{COLOURS[s["stage"]]}">{e(s["stage"].replace("_", " "))}</div>'
            for s in segments)
        rows.append(f'<div class="lane"><span class="who">{e(cloud)}</span>'
                    f'<div class="track">{divs}</div></div>')
    axis = (f'<div class="axis"><span>0 s</span><span style="float:right">{span:g} s'
            "</span></div>")
    return f'<h2>Timeline of this run</h2><div class="timeline">{"".join(rows)}{axis}</div>'


def render_history(rows: dict[str, list[dict[str, Any]]]) -> str:
    body = []
    for cloud, nights in sorted(rows.items()):
        cells = "".join(
            f'<td class="night {e(n["status"] or "")}"><b>{e(n["run"])}</b> '
            f'{e(n["status"] or "-")}<br><code>{e(n["build_id"] or "-")}</code><br>'
            f'{e(n["what"] or "")}</td>' for n in nights)
        body.append(f'<tr class="history"><td class=who>{e(cloud)}</td>{cells}</tr>')
    return ("<h2>Last nights</h2><table class=history><tbody>"
            + "".join(body) + "</tbody></table>")


def render_bytes(sent: dict[str, int]) -> str:
    cells = "".join(f"<tr><td class=who>{e(c)}</td><td class=bytes>{n:,}</td></tr>"
                    for c, n in sorted(sent.items()))
    return (f"<h2>Bytes sent</h2><table class=sent><tbody>{cells}<tr><td class=who>total</td>"
            f"<td class=bytes>{sum(sent.values()):,}</td></tr></tbody></table>")


def render_links(links: dict[str, str]) -> str:
    items = "".join(f'<li><a href="{e(path)}">{e(name)}</a></li>'
                    for name, path in links.items())
    return f"<h2>Logs</h2><ul class=logs>{items or '<li>none kept</li>'}</ul>"


STYLE = """.timeline{width:100%;max-width:60em}.lane{display:flex;align-items:center;margin:.2em 0}
.who{width:10em;font-weight:bold}.track{position:relative;flex:1;height:1.6em;background:#f4f4f4}
.bar{position:absolute;top:0;height:100%;font-size:.7em;overflow:hidden;white-space:nowrap;
border-right:1px solid #fff}.bar.failed{outline:2px solid #c00;outline-offset:-2px}.axis{margin-left:10em;font-size:.8em;color:#555}
td.who{font-weight:bold}td.night.done{background:#e4f6e4}td.night.failed{background:#f8dede}td.bytes{text-align:right}"""


def render_sections(report: dict[str, Any]) -> str:
    """The sections a report has (older reports have none)."""
    parts = []
    if "history" in report:
        parts.append(render_history(report["history"]))
    if "timeline" in report:
        parts.append(render_timeline(report["timeline"]))
    if "bytes_sent" in report:
        parts.append(render_bytes(report["bytes_sent"]))
    if "links" in report:
        parts.append(render_links(report["links"]))
    return "\n".join(parts)
