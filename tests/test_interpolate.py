"""Prompt interpolation: references are filled, everything else survives untouched."""

from __future__ import annotations

import contextlib
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from qwq_magic.interpolate import InterpolationError, interpolate

NS = {"name": "Ada", "n": 3, "d": {"key": "K", 1: "one"}, "xs": [10, 20]}


@pytest.mark.parametrize(("text", "out"), [
    ("Hi {name}!", "Hi Ada!"),
    ("{d['key']} {d[\"key\"]} {d[1]} {xs[-1]}", "K K one 20"),
    ("{n:03d} {name!r} {name.upper}", None),
    ('{"a": {"b": [1, 2]}}', '{"a": {"b": [1, 2]}}'),
    ("{x: 1 for x in y}", "{x: 1 for x in y}"),
    ("{ name }", "{ name }"),
    ("```\nfor k in {name}: pass\n```", "```\nfor k in {name}: pass\n```"),
    ("`{name}` and {name}", "`{name}` and Ada"),
    ("$x^{n}$ and $$\\frac{a}{b}$$ and \\(\\sqrt{n}\\)", None),
    ("\\textbf{name} a_{n} b^{n}", None),
    ("{{name}} {{", "{name} {"),
])
def test_cases(text, out):
    got = interpolate(text, NS)
    if out is None:
        if "{n:03d}" in text:
            assert got.startswith("003 'Ada' <built-in method upper")
        else:
            assert got == text
    else:
        assert got == out


@pytest.mark.parametrize("text", ["{nope}", "{name.nope}", "{d['missing']}", "{xs[5]}",
                                  "{n:zz}"])
def test_errors_name_the_reference(text):
    with pytest.raises(InterpolationError) as ei:
        interpolate(text, NS)
    assert text.strip("{}").split(":")[0].split(".")[0].split("[")[0] in str(ei.value)


@given(st.text(alphabet=st.characters(blacklist_characters="{}")))
def test_text_without_braces_is_untouched(text):
    assert interpolate(text, NS) == text


@given(st.text(alphabet="ab {}:\"'[]0$\\`\n", max_size=30))
def test_never_crashes_on_arbitrary_text(text):
    with contextlib.suppress(InterpolationError):
        interpolate(text, {"a": 1, "b": {"x": 2}, "ab": "v"})


# -- a format spec only when it is one (#19.5) -----------------------------------------------

JUPYTER_AI_PROMPT = "Why does {v:k for k,v in dic.items()} fail in my code?"


@pytest.mark.parametrize("ns", [{}, {"v": 1, "k": 2, "dic": {"a": 1}}])
def test_jupyter_ai_failing_prompt_passes_through(ns):
    """jupyter-ai's own failing prompt: with or without those names defined, nothing changes."""
    assert interpolate(JUPYTER_AI_PROMPT, ns) == JUPYTER_AI_PROMPT
    text = "Invert it: {v:k for k,v in dic.items()} then print {name}."
    assert interpolate(text, {**ns, "name": "it"}) == (
        "Invert it: {v:k for k,v in dic.items()} then print it.")


@pytest.mark.parametrize(("text", "ns", "out"), [
    ("{x:>8.2f}|", {"x": 3.14159}, "    3.14|"),
    ("{n:,} {n:_x} {n:+08d}", {"n": 1234567}, "1,234,567 12_d687 +1234567"),
    ("{p:.1%}", {"p": 0.256}, "25.6%"),
    ("{s:*^9}", {"s": "mid"}, "***mid***"),
    ("{when:%Y-%m-%d}", {"when": __import__("datetime").date(2026, 12, 1)}, "2026-12-01"),
    # not a spec (spaces, brackets, quotes): the braces stay, defined or not
    ("{x:foo(1)} {x:[1]} {x:'a'} {x:1 for x in y} {y:k;}", {"x": 1}, None),
])
def test_specs(text, ns, out):
    assert interpolate(text, ns) == (text if out is None else out)


@pytest.mark.parametrize("text", ["{name:d}", "{n:s}", "{n:zz}"])
def test_a_spec_the_value_refuses_is_an_error_naming_it(text):
    with pytest.raises(InterpolationError, match=re.escape(text)):
        interpolate(text, NS)


_fill_char = st.sampled_from(["", "*", "0", "x"])
_std_spec = st.builds(
    lambda fill, align, sign, alt, zero, width, group, prec, typ:
        (fill + align if align else "") + sign + alt + zero + width + group + prec + typ,
    _fill_char, st.sampled_from(["", "<", ">", "^", "="]), st.sampled_from(["", "+", "-", " "]),
    st.sampled_from(["", "#"]), st.sampled_from(["", "0"]),
    st.sampled_from(["", "1", "8", "12"]), st.sampled_from(["", ",", "_"]),
    st.sampled_from(["", ".0", ".3"]), st.sampled_from([*"bcdeEfFgGnosxX%", ""]),
)


@given(_std_spec.filter(lambda s: s and not s.startswith(" ")),
       st.sampled_from([0, 7, -42, 3.5, 1e10, "text"]))
def test_standard_specs_behave_like_format(spec, value):
    """A standard spec fills exactly what format() gives, or is an error where format() is."""
    try:
        expected: str | None = format(value, spec)
    except (ValueError, TypeError):
        expected = None
    if expected is None:
        with pytest.raises(InterpolationError):
            interpolate("{v:" + spec + "}", {"v": value})
    else:
        assert interpolate("{v:" + spec + "}", {"v": value}) == expected


@given(st.from_regex(r"[a-z]\w{0,5}", fullmatch=True),
       st.text(alphabet="abk,v.()[] _0123456789", min_size=1, max_size=25)
       .filter(lambda t: not t[0].isspace() and any(c in t for c in " ()[]")))
def test_code_after_a_colon_is_never_filled(name, tail):
    text = "{" + name + ":" + tail + "}"
    assert interpolate(text, {}) == text
    assert interpolate(text, {name: 1}) == text


# -- objects that describe themselves ---------------------------------------------------------

class LLMRepr:
    def _repr_llm_(self) -> str:
        return "a chart of sales by month"

    def __str__(self) -> str:
        return "<Chart>"


class AIRepr:
    def __init__(self, bundle):
        self.bundle = bundle

    def _ai_repr_(self, **kwargs):
        return self.bundle

    def __str__(self) -> str:
        return "<plain str>"


class AsyncAIRepr:
    async def _ai_repr_(self, **kwargs):
        return {"text/plain": "described asynchronously"}


class ClaimsEverything:
    """Answers every attribute (like a proxy or a Mock): must not pass for an _ai_repr_ object."""

    def __getattr__(self, name):
        return lambda *a, **k: "WRONG"

    def __str__(self) -> str:
        return "proxy"


@pytest.mark.parametrize(("obj", "out"), [
    (LLMRepr(), "a chart of sales by month"),
    (AIRepr({"image/png": "iVBOR…", "text/markdown": "**md**", "text/plain": "plain"}), "**md**"),
    (AIRepr({"text/plain": "plain only"}), "plain only"),
    (AIRepr({"text/csv": "a,b\n1,2"}), "a,b\n1,2"),
    (AIRepr({"application/json": {"k": [1, 2]}}), '{"k": [1, 2]}'),
    (AIRepr({"image/png": "iVBOR…"}), "<plain str>"),  # nothing textual: str()
    (AIRepr("a bare string"), "a bare string"),
    (AsyncAIRepr(), "described asynchronously"),
    (ClaimsEverything(), "proxy"),
])
def test_objects_describe_themselves(obj, out):
    assert interpolate("See {obj}.", {"obj": obj}) == f"See {out}."


def test_explicit_conversion_or_spec_bypasses_the_description():
    obj = LLMRepr()
    assert interpolate("{obj!s} {obj!s:>8}", {"obj": obj}) == "<Chart>  <Chart>"
    assert interpolate("{obj!r}", {"obj": obj}).startswith("<")


async def test_async_ai_repr_inside_a_running_loop():
    """A kernel runs cells inside its event loop: an async _ai_repr_ still completes."""
    assert interpolate("{o}", {"o": AsyncAIRepr()}) == "described asynchronously"


# -- DataFrames as compact Markdown tables ---------------------------------------------------

pd = pytest.importorskip("pandas")


def test_small_dataframe_is_a_markdown_table():
    df = pd.DataFrame({"name": ["Ada", "Alan"], "year": [1815, 1912]})
    assert interpolate("Data:\n{df}", {"df": df}) == (
        "Data:\n| name | year |\n|---|---|\n| Ada | 1815 |\n| Alan | 1912 |")


def test_index_cells_pipes_and_newlines():
    df = pd.DataFrame({"note": ["a|b", "two\nlines", "x" * 300]},
                      index=pd.Index(["r1", "r2", "r3"], name="id"))
    lines = interpolate("{df}", {"df": df}).splitlines()
    assert lines[0] == "| id | note |"
    assert lines[2] == "| r1 | a\\|b |" and lines[3] == "| r2 | two lines |"
    assert lines[4].endswith("… |") and len(lines[4]) < 140


def test_large_dataframe_is_capped_with_a_note():
    from qwq_magic import interpolate as mod

    df = pd.DataFrame({f"c{j}": range(j, j + 1000) for j in range(30)})
    text = interpolate("{df}", {"df": df})
    lines = text.splitlines()
    table = [ln for ln in lines if ln.startswith("|")]
    assert len(table) == 2 + mod.MAX_ROWS
    assert table[0].count("|") == mod.MAX_COLS + 1
    assert lines[-1] == (f"(table cut: showing the first {mod.MAX_ROWS} of 1,000 rows and "
                         f"the first {mod.MAX_COLS} of 30 columns)")
    assert "c29" not in text and "| 999 |" not in text


def test_series_and_empty_frame():
    s = pd.Series([1.5, 2.5], name="score")
    assert interpolate("{s}", {"s": s}) == "| score |\n|---|\n| 1.5 |\n| 2.5 |"
    empty = pd.DataFrame({"a": []})
    assert interpolate("{e}", {"e": empty}) == "| a |\n|---|\n\n(no rows)"
    assert interpolate("{df.shape}", {"df": empty}) == "(0, 1)"


# -- hostile objects: one line naming the variable --------------------------------------------

class Boom(Exception):
    def __str__(self) -> str:
        raise RuntimeError("even my message fails")


class Hostile:
    @property
    def prop(self):
        raise RuntimeError("property exploded\nwith a second line")

    def __str__(self) -> str:
        raise ValueError("no str for you")

    def __format__(self, spec: str) -> str:
        raise RuntimeError("format refused")


class HostileStr:
    def __str__(self) -> str:
        raise Boom()


class HostileRepr:
    def _repr_llm_(self) -> str:
        raise KeyError("llm repr broke")


@pytest.mark.parametrize(("text", "obj", "why"), [
    ("{h}", Hostile(), "RuntimeError: format refused"),
    ("{h!s}", Hostile(), "ValueError: no str for you"),
    ("{h.prop}", Hostile(), "RuntimeError: property exploded"),
    ("{h}", HostileStr(), "Boom"),
    ("{h}", HostileRepr(), "KeyError"),
])
def test_hostile_objects_give_one_line_naming_the_variable(text, obj, why):
    with pytest.raises(InterpolationError) as ei:
        interpolate(f"Explain {text} please", {"h": obj})
    msg = str(ei.value)
    assert "\n" not in msg and text in msg and why in msg
    assert ei.value.__cause__ is None and ei.value.__suppress_context__


def test_hostile_object_in_the_magic_is_one_line_and_nothing_is_sent(provider_server):
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.utils.capture import capture_output

    from qwq_magic import session

    ip = InteractiveShell.instance()
    ip.run_line_magic("load_ext", "qwq_magic")
    session.reset()
    try:
        ip.run_line_magic("qwq", f"use openai --base-url {provider_server.base_url('vllm')} "
                          "--model qwq")
        ip.user_ns["h"] = Hostile()
        with capture_output() as cap:
            res = ip.run_cell("%%qwq\nTell me about {h.prop}.")
        assert isinstance(res.error_in_exec, InterpolationError)
        shown = cap.stdout + cap.stderr
        assert "Traceback" not in shown and "{h.prop}" in shown
        assert len([ln for ln in shown.splitlines() if ln.strip()]) == 1
        assert provider_server.requests == []
    finally:
        ip.user_ns.pop("h", None)
        session.reset()
