"""Widgets shared by the screens: the line-numbered source view and the filter input."""

from __future__ import annotations

from rich.segment import Segment
from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip
from textual.widgets import DataTable, Input


def row_width(table: DataTable, estimate: int) -> int:
    """Return the cells a table's rows can fill: its width less a vertical scrollbar.

    Before the table's first layout its width is 0, so `estimate` (the
    expected width of the whole table) is used until the screen refills the
    table after the next refresh.
    """
    width = table.size.width or estimate
    return max(width - table.styles.scrollbar_size_vertical, 0)


class FilterInput(Input):
    """The `/` filter line: hidden until a screen opens it, filters as you type."""

    DEFAULT_CSS = """
    FilterInput {
        display: none;
        dock: bottom;
    }
    FilterInput.-open {
        display: block;
    }
    """

    def __init__(self, placeholder: str, *, id: str = "filter") -> None:
        super().__init__(placeholder=placeholder, id=id)

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    def open(self) -> None:
        self.add_class("-open")
        self.focus()

    def close(self) -> None:
        self.value = ""
        self.remove_class("-open")


class SourceView(ScrollView, can_focus=True):
    """The lines of one input with their numbers, a cursor line and a highlighted target line.

    The view renders only the rows on screen, so inputs of many thousands of
    lines scroll without delay. A filter keeps the lines that contain its text,
    ignoring case, and each kept line keeps its number in the file.
    """

    COMPONENT_CLASSES = {
        "source-view--gutter",
        "source-view--cursor",
        "source-view--target",
        "source-view--match",
    }

    DEFAULT_CSS = """
    SourceView {
        background: $surface;
    }
    SourceView > .source-view--gutter {
        color: $text-muted;
    }
    SourceView > .source-view--cursor {
        background: $accent 40%;
    }
    SourceView > .source-view--target {
        background: $warning 35%;
        text-style: bold;
    }
    SourceView > .source-view--match {
        background: $warning 60%;
        color: $text;
    }
    """

    BINDINGS = [
        Binding("up,k", "cursor_up", "Up", show=False),
        Binding("down,j", "cursor_down", "Down", show=False),
        Binding("pageup", "page_up", "Page up", show=False),
        Binding("pagedown,space", "page_down", "Page down", show=False),
        Binding("home,g", "first_line", "First line", show=False),
        Binding("end,G", "last_line", "Last line", show=False),
    ]

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.source: str | None = None
        self._lines: list[str] = []
        self._visible: list[int] = []
        self._cursor = 0
        self._target_number: int | None = None
        self._needle = ""
        self._width = 0

    @property
    def line_count(self) -> int:
        return len(self._lines)

    @property
    def visible_numbers(self) -> list[int]:
        """The 1-based numbers of the lines the filter keeps, in file order."""
        return [index + 1 for index in self._visible]

    @property
    def cursor_number(self) -> int | None:
        """The 1-based number of the line under the cursor, or None when nothing is shown."""
        if not self._visible:
            return None
        return self._visible[self._cursor] + 1

    @property
    def target_number(self) -> int | None:
        return self._target_number

    def show(self, source: str, lines: list[str], *, target: int | None = None) -> None:
        """Replace the shown text, clear the filter, and move to `target` (1-based) if given."""
        self.source = source
        self._lines = lines
        self._needle = ""
        self._width = max((len(line) for line in lines), default=0)
        self._visible = list(range(len(lines)))
        self._cursor = 0
        self._target_number = None
        self._update_virtual_size()
        self.scroll_to(0, 0, animate=False)
        if target is not None:
            self.go_to_line(target)
        self.refresh()

    def go_to_line(self, number: int) -> None:
        """Highlight line `number` (1-based) and scroll it to the middle of the view."""
        self._target_number = number
        if self._needle:
            self.set_filter("")
        if not self._visible:
            return
        self._cursor = min(max(number - 1, 0), len(self._visible) - 1)
        self.call_after_refresh(self._center_cursor)
        self.refresh()

    def set_filter(self, needle: str) -> None:
        """Keep only the lines that contain `needle`, ignoring case; an empty needle keeps all."""
        current = self.cursor_number
        self._needle = needle
        if needle:
            folded = needle.casefold()
            self._visible = [
                index for index, line in enumerate(self._lines) if folded in line.casefold()
            ]
        else:
            self._visible = list(range(len(self._lines)))

        self._cursor = 0
        if current is not None:
            for position, index in enumerate(self._visible):
                if index + 1 >= current:
                    self._cursor = position
                    break
        self._update_virtual_size()
        self.call_after_refresh(self._center_cursor)
        self.refresh()

    def _update_virtual_size(self) -> None:
        self.virtual_size = Size(self._gutter_width() + self._width, len(self._visible))

    def _gutter_width(self) -> int:
        return len(str(max(len(self._lines), 1))) + 2

    def _center_cursor(self) -> None:
        height = self.scrollable_content_region.height
        self.scroll_to(y=max(0, self._cursor - height // 2), animate=False)

    def _move_cursor(self, delta: int) -> None:
        if not self._visible:
            return
        self._cursor = min(max(self._cursor + delta, 0), len(self._visible) - 1)
        height = self.scrollable_content_region.height
        top = int(self.scroll_y)
        if self._cursor < top:
            self.scroll_to(y=self._cursor, animate=False)
        elif self._cursor >= top + height:
            self.scroll_to(y=self._cursor - height + 1, animate=False)
        self.refresh()

    def action_cursor_up(self) -> None:
        self._move_cursor(-1)

    def action_cursor_down(self) -> None:
        self._move_cursor(1)

    def action_page_up(self) -> None:
        self._move_cursor(-max(self.scrollable_content_region.height - 1, 1))

    def action_page_down(self) -> None:
        self._move_cursor(max(self.scrollable_content_region.height - 1, 1))

    def action_first_line(self) -> None:
        self._move_cursor(-len(self._visible))

    def action_last_line(self) -> None:
        self._move_cursor(len(self._visible))

    def render_line(self, y: int) -> Strip:
        scroll_x, scroll_y = self.scroll_offset
        row = scroll_y + y
        width = self.scrollable_content_region.width
        base = self.rich_style
        if row >= len(self._visible):
            return Strip.blank(width, base)

        index = self._visible[row]
        gutter_width = self._gutter_width()
        text_width = max(width - gutter_width, 0)
        line_style = self._line_style(row, index)

        gutter_style = base + self.get_component_rich_style("source-view--gutter")
        number = f"{index + 1:>{gutter_width - 2}}  "
        gutter = Strip([Segment(number, gutter_style)], gutter_width)

        text = Text(self._lines[index], no_wrap=True, end="")
        if self._needle:
            text.highlight_words(
                [self._needle],
                style=self.get_component_rich_style("source-view--match"),
                case_sensitive=False,
            )
        body = (
            Strip(text.render(self.app.console))
            .crop_extend(scroll_x, scroll_x + text_width, None)
            .apply_style(base)
        )

        strip = Strip.join([gutter, body])
        if line_style is not None:
            # Laid over the segment styles, so the whole row shows the highlight.
            strip = Strip(Segment.apply_style(strip, post_style=line_style), strip.cell_length)
        return strip

    def _line_style(self, row: int, index: int) -> Style | None:
        style = None
        if index + 1 == self._target_number:
            style = self.get_component_rich_style("source-view--target")
        if row == self._cursor:
            cursor = self.get_component_rich_style("source-view--cursor")
            style = cursor if style is None else style + cursor
        return style

    def on_focus(self) -> None:
        self.refresh()

    def on_blur(self) -> None:
        self.refresh()
