"""`dev up --detach` hands every other `dev up` option to the background run."""

from __future__ import annotations

import argparse

import pytest

from cli.dev import SKIPPED_UP_OPTIONS, foreground_argv
from cli.main import build_parser


def _up_parser() -> argparse.ArgumentParser:
    up: argparse.ArgumentParser = build_parser().parse_args(["dev", "up"]).up_parser
    return up


def _options() -> list[str]:
    """Every `dev up` option but --detach and --help: the ones the background run must get."""
    return [
        action.option_strings[-1]
        for action in _up_parser()._actions
        if action.option_strings and action.dest not in SKIPPED_UP_OPTIONS
    ]


def test_no_demo_survives_detach() -> None:
    args = build_parser().parse_args(["dev", "up", "--detach", "--no-demo"])
    assert foreground_argv(args.up_parser, args) == ["--no-demo"]


def test_detach_alone_hands_on_nothing() -> None:
    args = build_parser().parse_args(["dev", "up", "--detach"])
    assert foreground_argv(args.up_parser, args) == []


@pytest.mark.parametrize("option", _options())
def test_every_up_flag_reaches_the_background_run(option: str) -> None:
    """Parsing the handed-on argv gives the same options as the user's command, minus --detach."""
    action = next(a for a in _up_parser()._actions if option in a.option_strings)
    given = [option] if action.nargs == 0 else [option, "1"]
    user = build_parser().parse_args(["dev", "up", "--detach", *given])
    background = build_parser().parse_args(["dev", "up", *foreground_argv(user.up_parser, user)])
    assert not background.detach
    assert vars(background) | {"detach": True, "up_parser": None} == vars(user) | {
        "up_parser": None
    }
