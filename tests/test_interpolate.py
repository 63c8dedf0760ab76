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
    assert "\n```text\nDataFrame with" in text  # multi-line summaries are fenced, as data


def test_short_values_are_not_fenced() -> None:
    assert interpolate("n={n}", {"n": [1, 2]}).text == "n=[1, 2]"


def _history() -> dict[str, object]:
    """A namespace as IPython keeps it after three cells: ``In`` holds the transformed code,
    ``_i<n>`` the cell as typed, ``Out`` the values cells returned."""
    return {
        "In": ["", "x = 20", "get_ipython().run_line_magic('time', 'y = x + 1')\ny * 2", "z"],
        "_i1": "x = 20",
        "_i2": "%time y = x + 1\ny * 2",
        "_i3": "z",
        "Out": {2: 42, 3: "text"},
        "x": 20,
    }


def test_in_n_is_the_cell_as_typed_as_code() -> None:
    got = interpolate("Why is {In[1]} slow? And {In[2]}", _history())
    assert got.text == "Why is `x = 20` slow? And \n```python\n%time y = x + 1\ny * 2\n```\n"
    assert got.used == ("In[1]", "In[2]")
    assert got.undefined == ()


def test_negative_in_counts_back_as_python_reads_it() -> None:
    assert interpolate("{In[-1]} after {In[-3]}", _history()).text == "`z` after `x = 20`"


def test_in_falls_back_to_in_without_the_typed_copy() -> None:
    assert interpolate("{In[1]}", {"In": ["", "a = 1"]}).text == "`a = 1`"


def test_out_n_is_the_value_summarised() -> None:
    got = interpolate("{Out[2]} and {Out[3]} and {x}", _history())
    assert got.text == "42 and text and 20"
    assert got.used == ("Out[2]", "Out[3]", "x")


def test_out_tables_are_fenced_like_variables() -> None:
    pd = __import__("pytest").importorskip("pandas")
    df = pd.DataFrame({"a": [1, 2]})
    text = interpolate("see {Out[5]}", {"Out": {5: df}}).text
    assert text.startswith("see \n```text\nDataFrame with 2 rows × 1 columns (a):")


def test_missing_cells_and_outputs_are_left_and_reported() -> None:
    got = interpolate("{In[9]} {Out[1]} {In[0]} {Out[-1]} {In[9]} {In[2]}", _history())
    assert got.text.startswith("{In[9]} {Out[1]} {In[0]} {Out[-1]} {In[9]} ")
    assert got.undefined == ("In[9]", "Out[1]", "In[0]", "Out[-1]")
    assert interpolate("{In[1]} {Out[1]}", {}).undefined == ("In[1]", "Out[1]")


def test_double_braces_keep_in_and_out_literal() -> None:
    assert interpolate("{{In[1]}} {{Out[2]}}", _history()).text == "{In[1]} {Out[2]}"


def test_code_that_indexes_in_or_out_is_left_alone() -> None:
    prompt = "f'{In[1]!r}' {Out[x]} {In [1]} {In[1:2]}"
    assert interpolate(prompt, _history()).text == prompt


def test_a_cell_holding_a_fence_gets_a_longer_fence() -> None:
    ns = {"_i1": 'print("""\n```\n""")', "In": ["", ""]}
    assert "````python\n" in interpolate("{In[1]}", ns).text
