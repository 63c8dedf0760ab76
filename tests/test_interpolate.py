"""``{name}`` interpolation: variables replaced, everything else left exactly as written."""

from __future__ import annotations

from hermes_nb.notebook._interpolate import interpolate, summarise


def test_defined_names_are_replaced() -> None:
    got = interpolate("Explain {x} and {name}.", {"x": 42, "name": "Ada"})
    assert got.text == "Explain 42 and Ada."
    assert got.used == ("x", "name")
    assert got.undefined == ()


def test_code_and_json_braces_are_left_alone() -> None:
    prompt = 'def f(): return {"a": 1, **kw}\nd = {k: v for k, v in x}\nset {1, 2}'
    assert interpolate(prompt, {"x": 1, "k": 2}).text == prompt


def test_double_braces_are_literal() -> None:
    got = interpolate("{{x}} is {x}; f'{{a}}'", {"x": 1, "a": 2})
    assert got.text == "{x} is 1; f'{a}'"


def test_undefined_names_are_reported_once_and_kept() -> None:
    got = interpolate("{missing} {x} {missing} {other}", {"x": 1})
    assert got.text == "{missing} 1 {missing} {other}"
    assert got.undefined == ("missing", "other")


def test_long_values_are_cut() -> None:
    text = summarise("y" * 5000)
    assert text.startswith("y" * 2000)
    assert text.endswith("(3000 more characters)")


def test_a_broken_repr_does_not_break_the_prompt() -> None:
    class Bad:
        def __repr__(self) -> str:
            raise RuntimeError("no")

    assert summarise(Bad()) == "<Bad: repr failed with RuntimeError>"


def test_arrays_are_summarised() -> None:
    np = __import__("pytest").importorskip("numpy")
    text = summarise(np.arange(100_000))
    assert text.startswith("array of shape (100000,), dtype int")
    assert "..." in text
    assert len(text) < 300


def test_dataframes_are_summarised_with_shape_columns_and_head() -> None:
    pd = __import__("pytest").importorskip("pandas")
    df = pd.DataFrame({"key": [f"k{i}" for i in range(1000)], "value": range(1000)})
    text = interpolate("Why is {df} slow?", {"df": df}).text
    assert "DataFrame with 1000 rows × 2 columns (key, value)" in text
    assert "k4" in text
    assert "k5" not in text  # only the head
    assert len(text) < 500
    assert "\n```\nDataFrame with" in text  # multi-line summaries are fenced


def test_short_values_are_not_fenced() -> None:
    assert interpolate("n={n}", {"n": [1, 2]}).text == "n=[1, 2]"
