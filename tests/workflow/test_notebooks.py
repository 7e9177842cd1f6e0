"""The methodologist's power notebook executes top to bottom (few replicates, few draws)."""

from __future__ import annotations

import pytest
from helpers import ROOT


@pytest.mark.slow
def test_power_notebook_executes(monkeypatch):
    import nbclient
    import nbformat

    # The kernel's own inline backend shows the figures; a non-interactive MPLBACKEND would not.
    monkeypatch.delenv("MPLBACKEND", raising=False)
    nb = nbformat.read(ROOT / "notebooks" / "power.ipynb", as_version=4)
    client = nbclient.NotebookClient(
        nb,
        timeout=900,
        kernel_name="python3",
        resources={"metadata": {"path": str(ROOT / "notebooks")}},
    )
    client.execute()
    outputs = [o for cell in nb.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if {"image/png", "image/svg+xml"} & set(o.get("data", {}))]
    assert len(images) >= 2  # the matplotlib sweep and the summary's SVG
