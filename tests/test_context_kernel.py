"""Outputs, plots, rules and cost in a real kernel (issue 24 items 2, 4 and 5).

A real ipykernel (``kernel_harness.py``) draws an inline Matplotlib figure; ``%hermes --wait``
names it with ``{Out[n]}`` and an OpenAI-compatible server on 127.0.0.1 (``sse_server.py``)
records what the model was sent: the PNG as an image part for a profile with ``vision``, one
line for a text-only one. The offline model says what it received (``[image: W×H PNG]``). An
``AGENTS.md`` beside the notebook (found through ``JPY_SESSION_NAME``, as jupyter_server sets
it) reaches the system prompt, cut at 16 KB, and ``--no-rules`` / a profile's ``rules = false``
keep it out. Priced profiles give the status line its cost and ``%hermes usage`` its table.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kernel_harness import KernelHarness
from sse_server import SSEServer

from hermes_nb.core.images import image_info

pytestmark = [pytest.mark.kernel, pytest.mark.timeout(180)]

SETUP = """
%load_ext hermes_nb
import json, os
from hermes_nb.engine.runtime import get_runtime

def last_run():
    return max(get_runtime().runs(), key=lambda r: r.created_at)
"""


@pytest.fixture(scope="module")
def server() -> Iterator[SSEServer]:
    with SSEServer() as running:
        yield running


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The notebook's folder: a repository (``.git``) with its rules file at the top."""
    root = tmp_path_factory.mktemp("project")
    (root / ".git").mkdir()
    (root / "analysis").mkdir()
    return root


@pytest.fixture(scope="module")
def kernel(
    tmp_path_factory: pytest.TempPathFactory, server: SSEServer, folder: Path
) -> Iterator[KernelHarness]:
    home = tmp_path_factory.mktemp("kernel-home")
    (home / "config.toml").write_text(
        f"""
[profiles.eye]
provider = "openai"
base_url = "{server.url}"
model = "vision-model"
vision = true
titles = false
price_in = 2.5
price_out = 10.0
context_window = 1000

[profiles.text]
provider = "openai"
base_url = "{server.url}"
model = "text-model"
titles = false

[profiles.norules]
provider = "openai"
base_url = "{server.url}"
model = "text-model"
titles = false
rules = false

[profiles.offline]
provider = "echo"
vision = true
titles = false
options = {{ delay = 0 }}
""",
        encoding="utf-8",
    )
    with KernelHarness(home) as k:
        k.execute(SETUP)
        notebook = folder / "analysis" / "report.ipynb"
        k.execute(f"os.environ['JPY_SESSION_NAME'] = {str(notebook)!r}")
        yield k


def _figure_cell(k: KernelHarness) -> int:
    """A cell that draws an inline figure and returns nothing; its execution count."""
    result = k.execute("import matplotlib.pyplot as plt\nplt.plot([1, 3, 2])\nplt.title('dip');")
    return int(result.reply["content"]["execution_count"])


def _last_body(server: SSEServer) -> dict[str, Any]:
    return server.chat_requests[-1].body


def _run_text(k: KernelHarness) -> dict[str, Any]:
    out = k.execute(
        "r = last_run()\nprint(json.dumps({'text': r.text, 'status': str(r.status), "
        "'error': r.error}))"
    ).stdout()
    return dict(json.loads(out.strip().splitlines()[-1]))


def test_out_n_of_a_plot_sends_its_png_to_a_vision_profile(
    kernel: KernelHarness, server: SSEServer
) -> None:
    n = _figure_cell(kernel)
    kernel.execute(f"%hermes --wait -p eye what does {{Out[{n}]}} show?")
    assert _run_text(kernel)["status"] == "done"
    user = _last_body(server)["messages"][-1]
    assert user["role"] == "user"
    text, image = user["content"]
    assert text["type"] == "text"
    assert f"shown by cell {n}]" in text["text"] and "[image 1: " in text["text"]
    url = image["image_url"]["url"]
    assert url.startswith("data:image/png;base64,")
    info = image_info(base64.b64decode(url.partition(",")[2]))
    assert info is not None and info.kind == "PNG" and info.width > 100 and info.height > 100
    assert f"{info.width}×{info.height} PNG" in text["text"]


def test_out_n_of_a_plot_is_one_line_for_a_text_only_profile(
    kernel: KernelHarness, server: SSEServer
) -> None:
    n = _figure_cell(kernel)
    kernel.execute(f"%hermes --wait -p text what does {{Out[{n}]}} show?")
    user = _last_body(server)["messages"][-1]
    assert isinstance(user["content"], str)
    assert f"shown by cell {n}]" in user["content"]
    assert "[1 image left out: this model does not read images" in user["content"]
    assert "base64" not in json.dumps(_last_body(server))


def test_the_offline_model_says_what_image_it_received(kernel: KernelHarness) -> None:
    n = _figure_cell(kernel)
    kernel.execute(f"%hermes --wait -p offline what is {{Out[{n}]}}?")
    got = _run_text(kernel)
    assert got["status"] == "done", got
    assert "The images I received:" in got["text"]
    described = got["text"].split("The images I received:")[1]
    assert "[image: " in described and " PNG]" in described


def test_a_dataframe_cell_reaches_the_model_as_its_table(
    kernel: KernelHarness, server: SSEServer
) -> None:
    n = int(
        kernel.execute(
            "import pandas as pd\nfrom IPython.display import display\n"
            "display(pd.DataFrame({'city': ['Oslo', 'Lima'], 'temp': [3, 19]}))"
        ).reply["content"]["execution_count"]
    )
    kernel.execute(f"%hermes --wait -p text compare {{Out[{n}]}}")
    prompt = _last_body(server)["messages"][-1]["content"]
    assert "Oslo" in prompt and "Lima" in prompt and "temp" in prompt


def test_rules_beside_the_notebook_reach_the_system_prompt_and_the_head(
    kernel: KernelHarness, server: SSEServer, folder: Path
) -> None:
    (folder / "AGENTS.md").write_text("# House rules\nAlways answer in haiku.\n", "utf-8")
    try:
        kernel.execute("%hermes --wait -p text hello")
        system = _last_body(server)["messages"][0]
        assert system["role"] == "system"
        assert "Always answer in haiku." in system["content"]
        assert "AGENTS.md" in system["content"]
        head = kernel.execute(
            "from hermes_nb.view._static import static_bundle\n"
            "print(static_bundle(last_run())[0]['text/html'])"
        ).stdout()
        assert "rules: AGENTS.md" in head

        kernel.execute("%hermes --wait --no-rules -p text hello again")
        assert "haiku" not in json.dumps(_last_body(server)["messages"])
        kernel.execute("%hermes --wait -p norules hello once more")
        assert "haiku" not in json.dumps(_last_body(server)["messages"])
    finally:
        (folder / "AGENTS.md").unlink()


def test_a_long_rules_file_is_cut_at_16_kb_with_a_note(
    kernel: KernelHarness, server: SSEServer, folder: Path
) -> None:
    (folder / "analysis" / "HERMES.md").write_text("rule line\n" * 4000, "utf-8")
    try:
        kernel.execute("%hermes --wait -p text hello")
        system = _last_body(server)["messages"][0]["content"]
        assert "was cut: the system prompt takes the first 16 KB" in system
        assert 16_000 < len(system.encode()) < 17_000
    finally:
        (folder / "analysis" / "HERMES.md").unlink()


def test_a_rules_file_that_is_not_utf8_is_skipped_in_one_sentence(
    kernel: KernelHarness, server: SSEServer, folder: Path
) -> None:
    (folder / "AGENTS.md").write_bytes("Règles: réponds en français\n".encode("latin-1"))
    try:
        kernel.execute("%hermes --wait -p text hello")
        assert _run_text(kernel)["status"] == "done"
        assert _last_body(server)["messages"][0]["role"] == "user"  # no system prompt at all
        head = kernel.execute(
            "from hermes_nb.view._static import static_bundle\n"
            "print(static_bundle(last_run())[0]['text/html'])"
        ).stdout()
        assert "rules: AGENTS.md skipped — it is not UTF-8 text" in head
    finally:
        (folder / "AGENTS.md").unlink()


def test_context_and_cost_in_the_status_and_in_hermes_usage(
    kernel: KernelHarness, server: SSEServer
) -> None:
    kernel.execute("%hermes --new --wait -p eye first")
    kernel.execute("%hermes --wait -p eye second")
    status = kernel.execute(
        "from hermes_nb.view._static import static_bundle\n"
        "import re\nhtml = static_bundle(last_run())[0]['text/html']\n"
        "print(re.search(r'hnb-status-detail\">([^<]*)', html).group(1))"
    ).stdout()
    # the test server reports 5 prompt + 5 completion tokens a request: the last request's 10
    # are 1% of eye's 1,000-token window
    assert "ctx 1%" in status
    # two turns of 5 prompt + 5 completion tokens at 2.5 / 10 per million
    assert "session 20 tokens" in status
    assert "$0.0001" in status
    shown = json.dumps(
        [m["content"] for m in kernel.execute("%hermes usage").iopub], ensure_ascii=False
    )
    assert "| turns | tokens in | tokens out | cost |" in shown
    current = next(line for line in shown.split("\\n") if "◀ current" in line)
    assert current.endswith("| 2 | 10 | 10 | $0.0001 |"), current
