"""The page `python -m bot graph FLOW --html FILE` writes, opened in a real headless Chromium.

Every shipped flow (and a flow whose labels try to break out of the page) is drawn, each
page opened in a frame as wide as a desktop window and in one as narrow as a phone, and
read back after the browser laid it out: a node per step, no overlapping boxes, no text
outside its box, no arrow through a box, text no smaller than 10 px, and no page wider than the screen.
One browser run for all pages, bounded by a timeout.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from bot.diagram.graph import flow_graph
from bot.diagram.mermaid import to_mermaid
from bot.diagram.page import to_html
from bot.flowspec.library import FlowLibrary
from tests.support.odd_labels import load_odd_labels

WIDTHS = {"desktop": 1280, "phone": 360}
BROWSER_TIMEOUT = 120.0


def _chromium() -> str:
    found = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists()
                                         else None)
    if found is None:
        reason = ("Debian's chromium is not installed (/usr/bin/chromium); "
                  ".ci/run installs it: sudo apt-get install -y chromium fonts-dejavu-core")
        if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
            pytest.fail(reason)
        pytest.skip(reason)
    return found


def _pages(library: FlowLibrary, folder: Path) -> dict[str, Path]:
    pages = {}
    for flow in library.flows.values():
        graph = flow_graph(flow, library.menu())
        path = folder / f"{flow.id}.html"
        path.write_text(to_html(graph, to_mermaid(graph)), encoding="utf-8")
        pages[flow.id] = path
    return pages


_COLLECT = """
window.addEventListener('load', function () {
  var rows = [].slice.call(document.querySelectorAll('iframe')).map(function (frame) {
    var doc = frame.contentDocument, check = doc.getElementById('layout-check');
    var attrs = {};
    [].slice.call(check.attributes).forEach(function (a) { attrs[a.name] = a.value; });
    return {flow: frame.dataset.flow, size: frame.dataset.size, check: attrs,
            steps: [].slice.call(doc.querySelectorAll('.node[data-step]')).map(function (n) {
              return n.getAttribute('data-step'); }),
            texts: [].slice.call(doc.querySelectorAll('.node[data-step]')).map(function (n) {
              return n.textContent; }),
            scripts: doc.querySelectorAll('script').length,
            injected: doc.querySelectorAll('svg script, svg b, img').length};
  });
  document.getElementById('results').textContent = JSON.stringify(rows);
});
"""


def _render(pages: dict[str, Path], folder: Path) -> list[dict[str, object]]:
    frames = "".join(
        f'<iframe data-flow="{flow}" data-size="{size}" src="{path.as_uri()}" '
        f'style="width:{width}px;height:700px;border:0"></iframe>'
        for flow, path in pages.items() for size, width in WIDTHS.items())
    index = folder / "index.html"
    index.write_text(f'<!DOCTYPE html><html><body>{frames}<pre id="results">none</pre>'
                     f"<script>{_COLLECT}</script></body></html>", encoding="utf-8")
    command = [_chromium(), "--headless", "--no-sandbox", "--disable-gpu",
               "--disable-background-networking", "--disable-component-update", "--disable-sync",
               "--no-first-run", "--allow-file-access-from-files", "--window-size=1400,900",
               f"--user-data-dir={folder / 'profile'}", "--dump-dom", index.as_uri()]
    # A session of its own, so a hung browser is ended with every process it started.
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True, text=True)
    try:
        out, err = process.communicate(timeout=BROWSER_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"chromium did not finish within {BROWSER_TIMEOUT:.0f} s")
    match = re.search(r'<pre id="results">(.*?)</pre>', out, re.S)
    assert match, f"no results in the page chromium dumped (exit {process.returncode}): {err[-2000:]}"
    rows: list[dict[str, object]] = json.loads(html.unescape(match.group(1)))
    return rows


def test_pages_render_in_chromium_with_a_node_per_step_and_nothing_overlapping(
        library: FlowLibrary, tmp_path: Path) -> None:
    odd_library = load_odd_labels(tmp_path)
    flows = {**library.flows, "odd_labels": odd_library.flows["odd_labels"]}
    pages = _pages(library, tmp_path)
    odd = odd_library.flows["odd_labels"]
    odd_graph = flow_graph(odd, odd_library.menu())
    pages["odd_labels"] = tmp_path / "odd_labels.html"
    pages["odd_labels"].write_text(to_html(odd_graph, to_mermaid(odd_graph)), encoding="utf-8")

    rows = _render(pages, tmp_path)
    assert sorted((r["flow"], r["size"]) for r in rows) == sorted(
        (flow, size) for flow in pages for size in WIDTHS)
    for row in rows:
        flow = flows[str(row["flow"])]
        where = f"{flow.id} at {row['size']} width"
        graph = flow_graph(flow, (odd_library if flow.id == "odd_labels" else library).menu())
        check = row["check"]
        assert isinstance(check, dict)
        assert row["steps"] == [step.id for step in flow.steps], where
        assert check["data-status"] == "ok", (where, check)
        assert check["data-steps"] == str(len(flow.steps)), where
        labelled = sum(1 for e in graph.edges if e.label)
        assert check["data-boxes"] == str(len(graph.nodes) + labelled), where
        assert (check["data-overlaps"], check["data-overflows"],
                check["data-edges-through-boxes"]) == ("0", "0", "0"), where
        assert float(check["data-font-px"]) >= 10.0, where
        assert check["data-page-wider-than-screen"] == "false", where
        assert (row["scripts"], row["injected"]) == (1, 0), where
    odd_row = next(r for r in rows if r["flow"] == "odd_labels")
    texts = odd_row["texts"]
    assert isinstance(texts, list)
    assert "<script>alert(1)</script>" in texts[0]  # shown as text, never run
    assert "می‌خواهم" in texts[1]


class _Fetches(HTMLParser):
    """Every attribute that could make a browser fetch something."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str, str, str]] = []
        self.policy = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        if tag == "meta" and values.get("http-equiv") == "Content-Security-Policy":
            self.policy = values.get("content") or ""
        for name, value in attrs:
            if name in ("src", "href", "srcset", "data", "poster", "action", "xlink:href"):
                self.found.append((tag, name, value or ""))
        if tag in ("link", "img", "iframe", "object", "embed", "base"):
            self.found.append((tag, "", ""))


def test_page_loads_nothing_and_carries_its_mermaid(library: FlowLibrary) -> None:
    flow = library.flows["urgent_help"]
    graph = flow_graph(flow, library.menu())
    mermaid = to_mermaid(graph)
    page = to_html(graph, mermaid)
    parser = _Fetches()
    parser.feed(page)
    assert parser.found == []
    assert parser.policy.startswith("default-src 'none';")
    # The Mermaid source is in the page, escaped, so staff can copy it as the CLI prints it.
    pre = re.search(r"<pre>(.*?)</pre>", page, re.S)
    assert pre and html.unescape(pre.group(1)) == mermaid
    assert page.count('data-step="') == len(flow.steps)
    assert 'data-flow="talk_to_person"' in page and 'data-role="handover"' in page


def test_right_to_left_lines_are_isolated_and_keep_numbers_in_order(tmp_path: Path) -> None:
    odd = load_odd_labels(tmp_path)
    graph = flow_graph(odd.flows["odd_labels"], odd.menu())
    page = to_html(graph, to_mermaid(graph))
    drawn = re.search(r'<g class="node[^"]*"[^>]*data-step="persian".*?</g>', page)
    assert drawn
    lines = re.findall(r"<tspan[^>]*>(.*?)</tspan>", drawn.group(0))
    # The author's override (U+202E) is dropped; each Persian line is isolated as a whole,
    # and the phone number is one unit on one line, as the bot sends it in RTL languages.
    assert "\u202e" not in drawn.group(0) and "\u202c" not in drawn.group(0)
    rtl = [line for line in lines[2:] if line.startswith("\u2068")]
    assert rtl and all(line.endswith("\u2069") for line in rtl)
    assert any("0808 8010 503" in line for line in lines)  # never cut across lines
    assert "\u2068RTL\u2069" in "".join(rtl)  # a Latin word inside Persian is isolated too
    assert "می\u200cخواهم" in "".join(lines)  # ZWNJ kept: it is part of the word
