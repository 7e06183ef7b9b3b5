"""The pure position core of ``farloom watch``."""

from __future__ import annotations

from farloom_tasks.core.tail_position import (
    FileId,
    Positions,
    Token,
    is_truncated,
    resume_offset,
    split_lines,
)

A, B = FileId(1, 100), FileId(1, 200)


def test_an_unterminated_last_line_is_held_back() -> None:
    lines, used = split_lines(b'{"a":1}\r\n{"b":2}\n{"c"', 1000)
    assert lines == [(b'{"a":1}', 1009), (b'{"b":2}', 1017)]
    assert used == 17


def test_a_saved_offset_past_the_end_means_the_file_was_truncated_while_down() -> None:
    assert resume_offset(None, 50) == 0
    assert resume_offset(40, 50) == 40
    assert resume_offset(60, 50) == 0
    assert is_truncated(60, 10)
    assert not is_truncated(10, 10)


def test_positions_move_only_forward_to_confirmed_offsets() -> None:
    positions = Positions()
    positions.start(A, "/log", 0)
    positions.confirm(Token(A, 0, 300))
    positions.confirm(Token(A, 0, 200))  # an older confirm arriving late
    assert positions.files[A].offset == 300


def test_confirms_from_before_a_copytruncate_are_ignored() -> None:
    positions = Positions()
    positions.start(A, "/log", 0)
    positions.confirm(Token(A, 0, 500))
    positions.truncated(A, "/log")
    positions.confirm(Token(A, 0, 600))  # in flight when the file was truncated
    assert positions.files[A].offset == 0
    positions.confirm(Token(A, 1, 40))
    assert positions.files[A].offset == 40


def test_a_finished_rotated_file_is_forgotten_once_confirmed() -> None:
    positions = Positions()
    positions.start(A, "/log", 0)
    positions.start(B, "/log", 0)
    positions.finish(A, 300)
    assert A in positions.files
    positions.confirm(Token(A, 0, 300))
    assert A not in positions.files
    assert B in positions.files


def test_positions_survive_a_round_trip_through_json() -> None:
    positions = Positions()
    positions.start(A, "/var/log/clicks.log", 0)
    positions.confirm(Token(A, 0, 123))
    restored = Positions.from_json(positions.to_json())
    assert restored.files[A].offset == 123
    assert restored.files[A].path == "/var/log/clicks.log"
