"""Choosing how to draw images, and the half-block renderer."""

from __future__ import annotations

import pytest
from PIL import Image
from rich.segment import Segment

from workbench.tui.image_render import UPPER_HALF, HalfBlockImage, choose_renderer, detect_renderer, fit


@pytest.mark.parametrize("env, expected", [
    ({"TERM": "xterm-256color"}, "halfblock"),
    ({"TERM": "xterm-kitty", "KITTY_WINDOW_ID": "1"}, "kitty"),
    ({"TERM": "xterm-kitty", "KITTY_WINDOW_ID": "1", "TMUX": "/tmp/tmux-0/default,1,0"}, "halfblock"),
    ({"TERM": "screen-256color", "TERM_PROGRAM": "WezTerm"}, "halfblock"),
    ({"TERM": "xterm-256color", "TERM_PROGRAM": "WezTerm"}, "sixel"),
    ({"TERM": "foot"}, "sixel"),
    ({"TERM": "xterm-ghostty"}, "kitty"),
    ({}, "halfblock"),
])
def test_auto_detection_is_conservative(env, expected):
    assert detect_renderer(env)[0] == expected


def test_not_a_terminal_means_half_blocks():
    assert detect_renderer({"KITTY_WINDOW_ID": "1"}, is_tty=False)[0] == "halfblock"


def test_explicit_setting_wins_and_falls_back_without_the_graphics_package(monkeypatch):
    import workbench.tui.image_render as image_render

    assert choose_renderer("halfblock", {"KITTY_WINDOW_ID": "1"})[0] == "halfblock"
    monkeypatch.setattr(image_render, "graphics_available", lambda: False)
    renderer, why = choose_renderer("sixel", {})
    assert renderer == "halfblock" and "textual-image" in why
    monkeypatch.setattr(image_render, "graphics_available", lambda: True)
    assert choose_renderer("sixel", {})[0] == "sixel"


def test_fit_keeps_the_aspect_ratio():
    assert fit((100, 50), (20, 20)) == (20, 10)
    assert fit((10, 40), (20, 20)) == (5, 20)
    assert fit((10, 10), (0, 5)) == (0, 0)


def test_half_blocks_put_the_upper_pixel_in_front_and_the_lower_behind():
    image = Image.new("RGB", (2, 2))
    image.putpixel((0, 0), (255, 0, 0))
    image.putpixel((0, 1), (0, 0, 255))
    image.putpixel((1, 0), (0, 255, 0))
    image.putpixel((1, 1), (255, 255, 255))
    lines = HalfBlockImage(image, 2, 1).lines()
    assert len(lines) == 1
    cells = [s for s in lines[0] if s.text == UPPER_HALF]
    assert [(c.style.color.triplet, c.style.bgcolor.triplet) for c in cells] == [
        ((255, 0, 0), (0, 0, 255)), ((0, 255, 0), (255, 255, 255))]


def test_half_blocks_centre_the_image_in_its_box():
    image = Image.new("RGB", (4, 4), (10, 20, 30))
    lines = HalfBlockImage(image, 10, 4).lines()  # a 4x8 pixel box fits 8x8 -> 8 cells wide, 4 rows
    assert len(lines) == 4
    assert all(Segment.get_line_length(line) == 10 for line in lines)
    first = lines[0]
    assert first[0].text == " "  # one column of padding on the left
    assert sum(1 for s in first if s.text == UPPER_HALF) == 8


@pytest.mark.parametrize("renderer", ["kitty", "sixel"])
async def test_graphics_renderers_mount_and_show_a_grid(renderer):
    pytest.importorskip("textual_image")
    from textual.app import App

    from workbench.tui.sample_view import SampleView

    class Host(App):
        def compose(self):
            yield SampleView(renderer)

    app = Host()
    async with app.run_test(size=(60, 20)) as pilot:
        view = app.query_one(SampleView)
        view.show(Image.new("RGB", (32, 32), (200, 10, 10)))
        await pilot.pause(0.1)
        assert view._graphics is not None and view._graphics.image is view.image
