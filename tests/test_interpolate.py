"""Prompt interpolation: references are filled, everything else survives untouched."""

from __future__ import annotations

import contextlib

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
