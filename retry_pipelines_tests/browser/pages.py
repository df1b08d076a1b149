"""Reading the Dagster UI's pages (1.13) the way a person sees them.

Selectors lean on what the UI renders for people (button names, texts, tables) and on the
stable prefixes of its CSS module class names (``ConfigEditorHelp_container``,
``ConfigTypeSchema_dictEntry``, ``LogsRowComponents_row``); the hashed suffixes change between
builds and are never used.

How each reading works:

- **Launchpad field docs**: the launchpad's right-hand panel (``ConfigEditorHelp``) shows the
  config type of the dict the editor's cursor is in, every field with its description as a
  ``/* ... */`` comment above it. ``help_panel_fields`` types a small YAML reaching one dict
  into the editor, puts the cursor on its line and reads the panel's top-level entries.
- **Plots**: the asset page's Metadata section, switched to Plots, draws one Chart.js canvas per
  numeric metadata key. ``chart_values`` reads the data the chart was given from the canvas's
  React props (the rendered chart's own dataset, one value per partition, null where there is
  none); the test also counts the points in the data the page fetched (GraphQL
  ``AssetPartitionEventsQuery``) and requires both to agree.
- **Table metadata**: the Events tab shows the selected (latest) materialization's metadata as a
  table; a table-valued entry is rendered as an HTML table in the row of its label.
- **Run page**: the event log rows carry their event type as a tag; the message column holds
  the error's first line in its first span.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from retry_pipelines_tests.browser.site import RESULTS

if TYPE_CHECKING:  # collected without playwright too (the tests then skip, saying why)
    from playwright.sync_api import Page

UI_TIMEOUT_MS = 180_000
"""Longest wait for something the page is rendering: minutes on a busy machine."""

SCREENSHOT_MAX_PX = 8000
TALLEST_PANE_JS = "() => Math.max(...[...document.querySelectorAll('*')].map(e => e.scrollHeight))"
NEXT_FRAMES_JS = "() => new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))"
"""Resolves once the page has drawn twice: a resized window is laid out and painted."""

HELP_ENTRIES_JS = """
() => {
  const root = document.querySelector(
    '[class*="ConfigEditorHelp_container"] [class*="ConfigTypeSchema_typeSchemaContainer"]');
  if (!root) return null;
  return [...root.children]
    .filter(e => String(e.className).includes('ConfigTypeSchema_dictEntry'))
    .map(entry => {
      const comment = [...entry.children].find(
        c => String(c.className).includes('ConfigTypeSchema_dictComment'));
      const key = entry.querySelector('[class*="ConfigTypeSchema_dictKey"]');
      return {name: key ? key.innerText.trim() : '', comment: comment ? comment.innerText : ''};
    });
}
"""

HELP_SHOWS_JS = """
(name) => {
  const root = document.querySelector(
    '[class*="ConfigEditorHelp_container"] [class*="ConfigTypeSchema_typeSchemaContainer"]');
  if (!root) return false;
  return [...root.children].some(e => {
    const key = e.querySelector && e.querySelector('[class*="ConfigTypeSchema_dictKey"]');
    return key && key.innerText.trim() === name;
  });
}
"""

METADATA_TABLE_JS = """
(label) => {
  for (const td of document.querySelectorAll('td')) {
    if (td.innerText.trim() !== label || !td.nextElementSibling) continue;
    const table = td.nextElementSibling.querySelector('table');
    if (!table) continue;
    const head = [...table.querySelectorAll('thead th')].map(th => th.innerText.trim());
    const rows = [...table.querySelectorAll('tbody tr')]
      .filter(tr => [...tr.children].every(cell => cell.tagName === 'TD'))
      .map(tr => [...tr.children].map(cell => cell.innerText.trim()));
    return {head, rows};
  }
  return null;
}
"""

CHART_VALUES_JS = """
(title) => {
  const label = [...document.querySelectorAll('span')].find(s => s.innerText.trim() === title);
  let box = label;
  while (box && !box.querySelector('canvas')) box = box.parentElement;
  const canvas = box ? box.querySelector('canvas') : null;
  if (!canvas) return null;
  const fiberKey = Object.keys(canvas).find(k => k.startsWith('__reactFiber$'));
  for (let fiber = fiberKey ? canvas[fiberKey] : null; fiber; fiber = fiber.return) {
    const props = fiber.memoizedProps;
    if (props && props.data && Array.isArray(props.data.datasets)) {
      return props.data.datasets.map(d => d.data.map(p => {
        const y = (p !== null && typeof p === 'object') ? p.y : p;
        return Number.isFinite(y) ? y : null;
      }));
    }
  }
  return null;
}
"""

FAILURE_LINES_JS = """
() => [...document.querySelectorAll('[class*="LogsRowComponents_row"]')]
  .filter(row => row.querySelector('[data-tooltip="STEP_FAILURE"], [data-tooltip="RUN_FAILURE"]'))
  .map(row => {
    const message = row.querySelector('[class*="LogsRowComponents_messageColumn"]');
    return message ? message.innerText : '';
  })
"""


def screenshot(page: Page, name: str, *, whole: bool = True) -> Path:
    """The page as ``.ci-results/browser/<name>.png``. ``whole``: the UI scrolls inside its own
    panes, so the window is made as tall as the tallest of them (at most ``SCREENSHOT_MAX_PX``)
    for the picture, then given back its size; otherwise the window as it is (a run's event
    log, a virtualized list scrolled to its end, reads best so)."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.png"
    size = page.viewport_size
    tallest = min(int(page.evaluate(TALLEST_PANE_JS)), SCREENSHOT_MAX_PX) if whole else 0
    if size is not None and tallest > size["height"]:
        page.set_viewport_size({"width": size["width"], "height": tallest})
        page.evaluate(NEXT_FRAMES_JS)
    page.screenshot(path=str(path), full_page=True)
    if size is not None:
        page.set_viewport_size(size)
    return path


def open_launchpad(page: Page, url: str, location: str, job: str) -> None:
    page.goto(f"{url}/locations/{location}/jobs/{job}/playground")
    page.locator(".CodeMirror-line").first.wait_for(timeout=UI_TIMEOUT_MS)


def set_editor_text(page: Page, text: str) -> None:
    """Replace the launchpad editor's text, as a person selecting all and pasting would."""
    page.locator(".CodeMirror-lines").click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def help_panel_fields(page: Page, text: str, line: int, probe: str) -> list[dict[str, str]]:
    """With ``text`` in the editor and the cursor on ``line`` (which names field ``probe``),
    the help panel's top-level fields: name and the description comment shown above it."""
    set_editor_text(page, text)
    page.locator(".CodeMirror-line").nth(line).click()
    page.wait_for_function(HELP_SHOWS_JS, arg=probe, timeout=UI_TIMEOUT_MS)
    return page.evaluate(HELP_ENTRIES_JS)


def comment_text(comment: str) -> str:
    """The description inside a help panel comment (``/* ... */``), whitespace normalized."""
    text = " ".join(comment.replace("\u00a0", " ").split())
    text = text.removeprefix("/*").removesuffix("*/")
    return text.strip()


def metadata_table(page: Page, label: str) -> list[dict[str, str]]:
    """The rows of the table-valued metadata entry ``label`` on the page, as dicts by column."""
    page.wait_for_function(METADATA_TABLE_JS, arg=label, timeout=UI_TIMEOUT_MS)
    table = page.evaluate(METADATA_TABLE_JS, label)
    return [dict(zip(table["head"], row, strict=True)) for row in table["rows"]]


def chart_values(page: Page, title: str) -> list[list[float | None]]:
    """Per dataset of the chart titled ``title``, the value of each x position (None: no
    point there; the chart is given null or NaN where a partition has no value)."""
    page.wait_for_function(CHART_VALUES_JS, arg=title, timeout=UI_TIMEOUT_MS)
    return page.evaluate(CHART_VALUES_JS, title)


def failure_messages(page: Page) -> list[str]:
    """The messages of the run page's STEP_FAILURE and RUN_FAILURE rows, once one is shown."""
    page.wait_for_function(f"() => ({FAILURE_LINES_JS})().length > 0", timeout=UI_TIMEOUT_MS)
    return page.evaluate(FAILURE_LINES_JS)
