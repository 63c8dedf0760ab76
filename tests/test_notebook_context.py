"""What a cell showed, the project's rules and the cost, in one process (issue 24 items 2, 4, 5).

A real ``InteractiveShell`` with hermes_nb loaded runs cells that display figures and tables
(:mod:`hermes_nb.notebook._outputs` keeps them); image headers are read from files Pillow (which
Matplotlib brings) really wrote; rules files are real files in a temporary repository; turns run
on the echo model. ``tests/test_context_kernel.py`` does the same end to end in a kernel.
"""

from __future__ import annotations

import base64
import io
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import hermes_nb
from hermes_nb.core.config import load_config
from hermes_nb.core.exceptions import ConfigError
from hermes_nb.core.images import image_info
from hermes_nb.core.profiles import Profile
from hermes_nb.engine import find_rules, turn_rules
from hermes_nb.engine.tools import ToolImage, ToolResult
from hermes_nb.notebook import _outputs
from hermes_nb.notebook import tools as nbtools
from hermes_nb.notebook._interpolate import interpolate
from hermes_nb.notebook._outputs import cell_outputs
from hermes_nb.view._static import static_bundle

WAIT = 20


@pytest.fixture
def shell(ip: InteractiveShell) -> Iterator[InteractiveShell]:
    ip.run_cell("import matplotlib\nmatplotlib.use('module://matplotlib_inline.backend_inline')")
    yield ip
    ip.run_cell("import matplotlib.pyplot as plt\nplt.close('all')")


def run(ip: InteractiveShell, code: str) -> int:
    result = ip.run_cell(code, store_history=True)
    assert result.success, result.error_in_exec
    return int(result.execution_count)


def get_cell(ip: InteractiveShell, n: int) -> str | ToolResult:
    found = {t.name: t for t in nbtools.notebook_tools(ip)}["get_cell"]
    assert found.function is not None
    return found.function(n=n)  # type: ignore[no-any-return]


def _png(width: int, height: int) -> bytes:
    """A real (tiny-payload) PNG of any size: one grey row repeated, zlib-compressed."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    raw = zlib.compress((b"\x00" + b"\x80" * width) * height, 9)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


# -- what a cell showed ------------------------------------------------------------------------


def test_a_figure_a_dataframe_and_an_html_table_are_kept_for_their_cell(
    shell: InteractiveShell,
) -> None:
    plot = run(shell, "import matplotlib.pyplot as plt\nplt.plot([1, 2, 3])\nNone")
    tables = run(
        shell,
        "import pandas as pd\nfrom IPython.display import display, HTML\n"
        "display(pd.DataFrame({'city': ['Oslo'], 'temp': [3]}))\n"
        "display(HTML('<table><tr><th>x</th><th>y</th></tr><tr><td>1</td><td>2</td></tr>"
        "</table><script>alert(1)</script>'))\n7",
    )
    (figure,) = cell_outputs(shell, plot)
    assert figure.info is not None and figure.info.kind == "PNG" and figure.image
    texts = [s.text for s in cell_outputs(shell, tables)]
    assert "Oslo" in texts[0] and "temp" in texts[0]
    assert texts[1] == "x | y\n1 | 2"  # the HTML's text, its script left out

    result = get_cell(shell, plot)
    assert isinstance(result, ToolResult)
    (image,) = result.images
    assert image.mime == "image/png"
    assert f"[image 1: {figure.info.describe()}, shown by cell {plot}]" in result.text
    text = get_cell(shell, tables)
    assert isinstance(text, str) and "Oslo" in text and "x | y" in text
    assert f"Out[{tables}]: 7" in text


def test_out_n_is_the_displays_and_the_value_with_its_images(shell: InteractiveShell) -> None:
    plot = run(shell, "import matplotlib.pyplot as plt\nplt.plot([3, 1])\nprint('hi')\n41 + 1")
    result = interpolate(
        f"explain {{Out[{plot}]}}", shell.user_ns, outputs=lambda n: cell_outputs(shell, n)
    )
    assert result.used == (f"Out[{plot}]",) and not result.undefined
    assert f"shown by cell {plot}]" in result.text and "42" in result.text
    (image,) = result.images
    info = image_info(base64.b64decode(image.data))
    assert info is not None and f"[image 1: {info.describe()}" in result.text


@pytest.mark.parametrize(
    ("code", "kept"),
    [
        pytest.param(
            "display({'text/plain': 'the view'}, raw=True, metadata={'hermes_nb': {}})\n"
            "display({'text/plain': 'mine'}, raw=True)",
            ["mine"],
            id="the chat view itself is not a cell's output",
        ),
        pytest.param(
            "display({'text/plain': 'step 1'}, raw=True, display_id='progress')\n"
            "update_display({'text/plain': 'all done'}, raw=True, display_id='progress')",
            ["all done"],
            id="an updated display is kept as it ends",
        ),
    ],
)
def test_a_cells_outputs_are_what_it_left_on_the_page(
    shell: InteractiveShell, code: str, kept: list[str]
) -> None:
    n = run(shell, "from IPython.display import display, update_display\n" + code)
    assert [s.text for s in cell_outputs(shell, n)] == kept


def test_kept_images_are_capped_oldest_first(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    png = _png(300, 200)
    monkeypatch.setattr(_outputs, "IMAGE_BUDGET", int(len(png) * 2.5))
    shell.user_ns["png"] = png
    cells = [
        run(shell, "from IPython.display import Image, display\ndisplay(Image(png))")
        for _ in range(3)
    ]
    first, *rest = (cell_outputs(shell, n)[0] for n in cells)
    assert first.dropped and first.info is not None and first.info.describe() == "300×200 PNG"
    assert all(s.image == png for s in rest)
    result = interpolate(f"{{Out[{cells[0]}]}}", shell.user_ns, lambda n: cell_outputs(shell, n))
    assert "that cell" in result.text and "is no longer kept" in result.text
    assert not result.images


def test_a_cell_number_used_again_shows_nothing_of_the_cell_it_had_before(
    shell: InteractiveShell,
) -> None:
    # A new history session (IPython's reset(new_session=True)) numbers cells from 1 again.
    shell.user_ns["png"] = _png(30, 20)
    n = run(shell, "from IPython.display import Image, display\ndisplay(Image(png))")
    assert cell_outputs(shell, n)
    shell.execution_count = n
    assert run(shell, "x = 1") == n
    assert cell_outputs(shell, n) == []


def test_a_huge_image_is_left_out_with_the_reason(shell: InteractiveShell) -> None:
    shell.user_ns["huge"] = _png(9000, 10)
    n = run(shell, "from IPython.display import Image, display\ndisplay(Image(huge))")
    text = get_cell(shell, n)
    assert isinstance(text, str)  # no image travels
    assert "an image (9000×10 PNG" in text
    assert "larger than 5 MB or 8000 pixels on a side" in text
    assert "show it smaller (a lower dpi or figsize)" in text


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "WEBP"])
def test_image_headers_give_format_and_size(fmt: str) -> None:
    from PIL import Image  # Matplotlib brings Pillow; hermes_nb itself never imports it

    buffer = io.BytesIO()
    Image.new("RGB", (123, 45), "red").save(buffer, format=fmt)
    info = image_info(buffer.getvalue())
    assert info is not None
    assert (info.kind.upper(), info.width, info.height) == (fmt, 123, 45)
    assert image_info(b"not an image at all") is None


# -- images in the turn ------------------------------------------------------------------------


def test_images_go_as_parts_to_vision_and_as_a_line_to_text_models() -> None:
    image = ToolImage("image/png", base64.b64encode(_png(64, 32)).decode())
    seen = hermes_nb.chat("look", profile=Profile(vision=True), images=[image], delay=0)
    assert seen.wait(WAIT).status.value == "done"
    assert "- [image: 64×32 PNG]" in seen.text
    blind = hermes_nb.chat("look", profile=Profile(vision=False), images=[image], delay=0)
    blind.wait(WAIT)
    assert "[1 image left out: this model does not read images" in blind.text
    assert "[image: 64×32 PNG]" not in blind.text
    broken = ToolImage("image/png", base64.b64encode(b"garbage").decode())
    odd = hermes_nb.chat("look", profile=Profile(vision=True), images=[broken], delay=0)
    assert "- [image: not readable]" in odd.wait(WAIT).text


# -- rules -------------------------------------------------------------------------------------


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository (``.git``) with a notebook folder two levels down, outside home."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    root = tmp_path / "work" / "repo"
    (root / ".git").mkdir(parents=True)
    (root / "notebooks" / "eda").mkdir(parents=True)
    return root


def test_the_nearest_rules_file_wins_agents_before_hermes(repo: Path) -> None:
    (repo / "AGENTS.md").write_text("top", "utf-8")
    folder = repo / "notebooks" / "eda"
    found = find_rules(folder)
    assert found is not None and found.text == "top" and found.path == repo / "AGENTS.md"
    (repo / "notebooks" / "HERMES.md").write_text("nearer", "utf-8")
    found = find_rules(folder)
    assert found is not None and found.text == "nearer"
    (repo / "notebooks" / "AGENTS.md").write_text("nearer agents", "utf-8")
    found = find_rules(folder)
    assert found is not None and found.text == "nearer agents" and found.label == "rules: AGENTS.md"


def test_the_search_stops_at_the_repository_root_and_at_home(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "work" / "AGENTS.md").write_text("outside the repository", "utf-8")
    assert find_rules(repo / "notebooks" / "eda") is None
    home = tmp_path / "home"
    (home / "projects" / "nb").mkdir(parents=True)
    (tmp_path / "AGENTS.md").write_text("above home", "utf-8")
    assert find_rules(home / "projects" / "nb") is None
    (home / "AGENTS.md").write_text("home's own", "utf-8")
    found = find_rules(home / "projects" / "nb")
    assert found is not None and found.text == "home's own"


def test_a_long_rules_file_is_cut_and_says_so(repo: Path) -> None:
    (repo / "AGENTS.md").write_text("é" * 20_000, "utf-8")  # 40,000 bytes
    found = find_rules(repo)
    assert found is not None and found.cut == 40_000 - 16 * 1024
    assert len(found.text.encode()) == 16 * 1024
    assert found.label == "rules: AGENTS.md (cut to 16 KB)"


def test_rules_reach_the_system_prompt_unless_the_profile_says_no(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "AGENTS.md").write_text("Use polars, not pandas.", "utf-8")
    sent: list[list[dict[str, object]]] = []
    from hermes_nb.providers import echo

    original = echo.EchoProvider.stream

    def spy(self: echo.EchoProvider, request: object) -> object:
        sent.append(list(request.messages))  # type: ignore[attr-defined]
        return original(self, request)  # type: ignore[arg-type]

    monkeypatch.setattr(echo.EchoProvider, "stream", spy)
    run_ = hermes_nb.chat("hi", profile=Profile(system_prompt="Be brief."), rules=repo, delay=0)
    assert run_.wait(WAIT).status.value == "done"
    system = sent[-1][0]
    assert system["role"] == "system"
    assert str(system["content"]).startswith("Be brief.\n\nThe project's rules, from AGENTS.md")
    assert "Use polars, not pandas." in str(system["content"])
    head = static_bundle(run_)[0]["text/html"]
    assert "rules: AGENTS.md" in head

    off = hermes_nb.chat("hi", profile=Profile(rules=False), rules=repo, delay=0)
    off.wait(WAIT)
    assert sent[-1][0]["role"] == "user" and "rules:" not in static_bundle(off)[0]["text/html"]
    assert turn_rules(Profile(rules=False), repo) is None
    assert turn_rules(Profile(), None) is None


def test_a_rules_file_that_is_not_utf8_is_skipped_and_the_turn_runs(repo: Path) -> None:
    (repo / "AGENTS.md").write_bytes(b"r\xe8gles\n")
    found = find_rules(repo)
    assert found is not None and not found.text
    assert found.problem == "it is not UTF-8 text; save it as UTF-8 to have the model read it."
    run_ = hermes_nb.chat("hi", profile=Profile(), rules=repo, delay=0)
    assert run_.wait(WAIT).status.value == "done"
    assert "rules: AGENTS.md skipped — it is not UTF-8 text" in static_bundle(run_)[0]["text/html"]


def test_no_rules_flag_on_the_magic(
    ip: InteractiveShell, repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (repo / "AGENTS.md").write_text("Answer in French.", "utf-8")
    monkeypatch.setenv("JPY_SESSION_NAME", str(repo / "notebooks" / "eda" / "a.ipynb"))
    from hermes_nb.engine.runtime import get_runtime

    def last() -> object:
        return max(get_runtime().runs(), key=lambda r: r.created_at)

    ip.run_line_magic("hermes", "--wait -o delay=0 hello")
    assert last().request.rules is not None  # type: ignore[attr-defined]
    ip.run_line_magic("hermes", "--wait --no-rules -o delay=0 hello")
    assert last().request.rules is None  # type: ignore[attr-defined]


# -- profiles, prices and usage ----------------------------------------------------------------


def test_prices_and_rules_are_validated_naming_the_profile(hermes_home: Path) -> None:
    config = hermes_home / "config.toml"
    config.write_text("[profiles.cheap]\nprice_in = 0.15\nprice_out = 0.6\nrules = false\n")
    cheap = load_config().profile("cheap")
    assert (cheap.price_in, cheap.price_out, cheap.rules) == (0.15, 0.6, False)
    assert cheap.cost({"prompt_tokens": 1_000_000, "completion_tokens": 500_000}) == 0.45
    assert Profile().cost({"prompt_tokens": 10}) is None
    for bad, words in (
        ("price_in = -1", "profiles.cheap.price_in must be a price per million tokens"),
        ("price_out = 'a lot'", "profiles.cheap.price_out must be a number"),
        ("rules = 'yes'", "profiles.cheap.rules must be true or false"),
        ("context_window = 0", "profiles.cheap.context_window must be a positive whole number"),
    ):
        config.write_text(f"[profiles.cheap]\n{bad}\n")
        with pytest.raises(ConfigError, match=re.escape(words)):
            load_config()


def test_the_status_shows_context_and_cost_only_when_priced() -> None:
    priced = Profile(context_window=200, price_in=3.0, price_out=15.0)
    run_ = hermes_nb.chat("one two three four", profile=priced, delay=0)
    run_.wait(WAIT)
    detail = re.search(r'hnb-status-detail">([^<]*)', static_bundle(run_)[0]["text/html"])
    assert detail is not None
    context = run_.usage["context_tokens"]  # the last request's prompt + completion
    assert context == run_.usage["prompt_tokens"] + run_.usage["completion_tokens"]
    assert f"ctx {100 * context / 200:.0f}%" in detail.group(1)
    assert "$0.0" in detail.group(1)
    plain = hermes_nb.chat("one two", profile=Profile(), delay=0)
    plain.wait(WAIT)
    assert "$" not in static_bundle(plain)[0]["text/html"].split("hnb-status-detail")[1][:200]


def test_hermes_usage_before_any_turn_says_so(ip: InteractiveShell) -> None:
    shown = ip.run_line_magic("hermes", "usage")
    assert "No tokens spent yet" in repr(shown)
    with pytest.raises(UsageError, match="takes no arguments"):
        ip.run_line_magic("hermes", "usage now")


def test_an_in_process_agent_gets_the_prompts_text_and_a_line_per_image() -> None:
    from hermes_nb.providers._agent_request import _split_messages

    url = "data:image/png;base64," + base64.b64encode(_png(8, 8)).decode()
    _, prompt, _ = _split_messages(
        [
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is [image 1]?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ]
    )
    assert prompt.startswith("what is [image 1]?")
    assert "[an image was left out: the agent is given the prompt's text only]" in prompt
    assert "base64" not in prompt


def test_the_notebooks_folder_from_the_server_vs_code_or_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hermes_nb.notebook._where import notebook_folder

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.delenv("JPY_SESSION_NAME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert notebook_folder({}) == tmp_path
    assert notebook_folder({"__session__": "relative/name.ipynb"}) == tmp_path
    monkeypatch.setenv("JPY_SESSION_NAME", str(tmp_path / "a" / "x.ipynb"))
    assert notebook_folder({}) == tmp_path / "a"
    # The most specific name first, as for the document tools' file (_where.notebook_path):
    # the rules and the document are the same notebook's.
    vs_code = {"__vsc_ipynb_file__": str(tmp_path / "b" / "x.ipynb")}
    assert notebook_folder(vs_code) == tmp_path / "b"
    assert notebook_folder({"__vsc_ipynb_file__": str(tmp_path / "gone" / "x.ipynb")}) == (
        tmp_path / "a"
    )


def test_a_cell_that_displays_in_a_loop_keeps_its_last_outputs(shell: InteractiveShell) -> None:
    n = run(
        shell,
        "from IPython.display import display\n"
        "for i in range(5000): display({'text/plain': f'row {i}'}, raw=True)",
    )
    kept = cell_outputs(shell, n)
    assert len(kept) == _outputs.MAX_OUTPUTS + 1
    assert (
        kept[0].text == f"[… {5000 - _outputs.MAX_OUTPUTS:,} earlier outputs of this cell not kept]"
    )
    assert kept[-1].text == "row 4999"
