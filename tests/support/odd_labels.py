"""A flow whose texts and labels look like Mermaid, HTML and bidi syntax, for the graph tests."""

from __future__ import annotations

import textwrap
from pathlib import Path

from bot.flowspec.library import FlowLibrary, in_folder_context, load_library
from tests.conftest import FLOWS_DIR

__all__ = ["ODD_LABELS", "load_odd_labels"]

ODD_LABELS = textwrap.dedent('''\
    spec_version: 1
    id: odd_labels
    title: 'Odd "labels" #1'
    steps:
      - id: end
        ask: 'She said "yes"]; then <script>alert(1)</script> & #35; | `code` %% done'
        buttons:
          - {id: a, label: 'Quote " and ]', next: persian}
          - {id: b, label: "Pipe | and <b>", next: "flow:talk_to_person"}
          - {id: c, label: "#quot; literally", next: MENU}
          - {id: d, label: 'C:\\new\\no break', next: END}
      - id: persian
        say: "می‌خواهم \u202eRTL\u202c بدانم؟ (نیم‌فاصله) 0808 8010 503"
      - id: graph
        goto:
          - if: {language_is: [fa, prs]}
            then: finish
          - else: END
      - id: finish
        end: true
''')


def load_odd_labels(folder: Path) -> FlowLibrary:
    """The shipped flows with odd_labels.yaml, written into ``folder`` as a draft."""
    draft = folder / "odd_labels.yaml"
    draft.write_text(ODD_LABELS, encoding="utf-8")
    return load_library(in_folder_context([draft], FLOWS_DIR))
