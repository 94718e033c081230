"""The monitoring views in /play, in Debian's Chromium: data from the tab's kernel worker."""

from __future__ import annotations

import pytest

from bench.tab import CHROMIUM, CHROMIUM_FLAGS, become_guest, has_prompt, serving, wait_screen

pytestmark = pytest.mark.browser

SPAWN = 'spawn "counter" with { stdio: client @stdio, counter: client @counter }\n'


@pytest.fixture(scope="module")
def page():
    from playwright.sync_api import sync_playwright

    with serving() as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS
        )
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(url + "/play")
        wait_screen(page, has_prompt, 120)
        become_guest(page)  # the demo bundle: a launcher, the counter, a logger
        page.click("#monitor-toggle")
        yield page
        assert errors == []
        browser.close()


def tab(page, name: str) -> None:
    page.click(f'#monitor [data-tab="{name}"]')


def type_line(page, text: str) -> None:
    page.click("#terminal")
    page.keyboard.type(text)


def snapshot(page, expression: str):
    return page.evaluate(f"() => {{ const s = caposMonitor.snapshot; return {expression}; }}")


def test_init_and_the_shell_appear_in_the_process_table(page):
    tab(page, "processes")
    page.wait_for_selector('#mon-processes tr[data-pid="1"]', timeout=10_000)
    rows = page.inner_text("#mon-processes")
    assert "init" in rows and "shell" in rows
    page.click('#mon-processes tr[data-pid="1"]')  # a process's cap table and ledger
    detail = page.inner_text('[data-detail="pid:1"]')
    assert "ProcessSpawner" in detail and "cap_slots" in detail


def test_a_spawned_child_appears_within_a_second_its_grant_is_an_edge_and_kill_leaves_a_record(
    page,
):
    tab(page, "processes")
    type_line(page, SPAWN)
    rows = wait_screen(page, lambda rows: any(r.startswith("[1] counter (pid ") for r in rows), 60)
    pid = int(next(r for r in rows if r.startswith("[1] counter")).split("pid ")[1].rstrip(")"))
    page.wait_for_selector(f'#mon-processes tr[data-pid="{pid}"]', timeout=1000)

    counter = snapshot(
        page,
        f"s.processes.find(p => p.pid === {pid}).caps.find(c => c.interface === 'Counter')",
    )
    tab(page, "graph")
    page.wait_for_selector(f'#mon-graph [data-edge="{pid}->{counter["objectId"]}"]')
    page.click(f'#mon-graph [data-node="{counter["objectId"]}"]')  # the object: its holders
    holders = page.inner_text(f'[data-detail="{counter["objectId"]}"]')
    assert f"counter[{pid}]" in holders and "served by counter[3]" in holders

    type_line(page, "kill\n")
    wait_screen(page, lambda rows: any("done  counter  (killed" in r for r in rows), 30)
    tab(page, "exits")
    record = page.wait_for_selector(f'#monitor tr[data-exit="{pid}"]', timeout=5000)
    assert "killed" in record.inner_text()
    tab(page, "processes")
    assert page.query_selector(f'#mon-processes tr[data-pid="{pid}"]') is None


def test_a_call_shows_up_in_the_trace_and_the_charts(page):
    tab(page, "calls")
    type_line(page, "counter.increment(by=5)\n")
    wait_screen(page, lambda rows: any(r.startswith("value = ") for r in rows), 30)
    row = page.wait_for_selector('#mon-calls tr[data-call="Counter.increment"]', timeout=5000)
    assert "shell[" in row.inner_text() and "counter[3]" in row.inner_text()
    page.wait_for_function("document.querySelectorAll('#monitor .mon-charts .uplot').length == 2")


def test_logs_filter_by_process_and_level(page):
    tab(page, "logs")
    type_line(page, 'logger.write(level=warn, text="disk is lava")\n')
    page.wait_for_selector("#monitor tr.level-warn:has-text('disk is lava')", timeout=5000)
    page.select_option("#mon-log-level", "error")
    page.wait_for_selector("#monitor tr.level-warn", state="detached")
    page.select_option("#mon-log-level", "debug")
    shell = snapshot(page, "s.processes.find(p => p.name === 'shell').pid")
    page.select_option("#mon-log-process", str(shell))
    assert "disk is lava" in page.wait_for_selector("#monitor tr.level-warn").inner_text()
