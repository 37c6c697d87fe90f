"""The web page in headless Chromium: it lists the cameras, draws live scores, uses the API key, and scores
clips on the scale chosen (the checkpoint's, the clip's opening seconds, a camera's calibration)."""

from __future__ import annotations

import json

import pytest

from testkit.servers import NOWHERE, wait_for
from tests.service.browser import Browser, chromium_path

pytestmark = [pytest.mark.slow, pytest.mark.skipif(chromium_path() is None, reason="chromium not installed")]


@pytest.fixture
def browser():
    b = Browser()
    yield b
    b.close()


def add_camera(browser, stream_id: str, url: str) -> None:
    """Fill in and submit the page's add-a-camera form."""
    browser.evaluate(f"""(() => {{
        const f = document.querySelector('#add-form');
        f.elements.id.value = {json.dumps(stream_id)};
        f.elements.url.value = {json.dumps(url)};
        f.querySelector('button').click();
    }})()""")


def upload_clip(browser, clip, scale: str = "checkpoint", seconds: float | None = None, camera: str | None = None):
    """Pick the clip, the scale and its parameter in the page's score-a-clip form, and submit it."""
    data = list(clip.read_bytes())
    browser.evaluate(f"""(() => {{
        const form = document.querySelector('#score-form');
        const file = new File([new Uint8Array({data})], 'clip.mp4', {{type: 'video/mp4'}});
        const dt = new DataTransfer();
        dt.items.add(file);
        form.querySelector('input[type=file]').files = dt.files;
        form.querySelector('#clip-summary').textContent = '';
        form.elements.scale.value = {json.dumps(scale)};
        if ({json.dumps(seconds)} !== null) form.elements.calibrate_seconds.value = {json.dumps(seconds)};
        if ({json.dumps(camera)} !== null) form.elements.camera.value = {json.dumps(camera)};
        form.querySelector('button').click();
    }})()""")


def stat_text(browser, stream_id: str, name: str) -> str | None:
    """The value a camera's card shows beside the stat `name` (None: no such stat)."""
    return browser.evaluate(f"[...document.querySelectorAll('.camera[data-id={stream_id}] .stats dt')]"
                            f".find((dt) => dt.textContent === {json.dumps(name)})?.nextElementSibling.textContent")


def clip_summary(browser) -> str:
    text = "document.querySelector('#clip-summary').textContent"
    return wait_for(lambda: "frames" in (s := browser.evaluate(text)) and s, 20, what="the clip result")


def test_page_lists_cameras_and_draws_scores(live, rtsp, browser):
    server = rtsp(mounts="gate,yard")
    app = live(api_key="k1")
    for cam, stride in (("gate", None), ("yard", 1)):  # the model's stride (4 on a CPU), and frame by frame
        r = app.client.post("/streams", json={"id": cam, "url": f"rtsp://127.0.0.1:{server.port}/{cam}",
                                              "stride": stride}, headers={"X-API-Key": "k1"})
        assert r.status_code == 201
    browser.goto(app.url + "/")
    browser.evaluate("localStorage.setItem('ocrganApiKey', 'k1')")  # as if typed into the key field
    browser.goto(app.url + "/")
    ids = wait_for(lambda: browser.evaluate(
        "[...document.querySelectorAll('#cameras .camera')].map(e => e.dataset.id).join(',')") == "gate,yard",
        20, what="the camera list")
    assert ids
    wait_for(lambda: browser.evaluate("document.querySelector('#live').textContent") == "live", 10,
             what="the WebSocket (with the API key)")
    state = "document.querySelector('.camera[data-id=gate] .state').textContent"
    wait_for(lambda: browser.evaluate(state) == "running", 20, what="the state shown")
    assert app.client.get("/streams/yard").json()["scoring"] == "frames"
    assert (stat_text(browser, "gate", "scoring"), stat_text(browser, "yard", "scoring")) == (
        f"windows every {app.services.host.camera_stride}", "frames")
    assert "cameras scored by windows every 4 ·" in browser.evaluate("document.querySelector('#model').textContent")
    points = "Number(document.querySelector('.camera[data-id=gate] canvas').dataset.points || 0)"
    first = wait_for(lambda: browser.evaluate(points) >= 10 and browser.evaluate(points), 20, what="a drawn chart")
    wait_for(lambda: browser.evaluate(points) > first, 10, what="the chart to grow with live scores")
    drawn = browser.evaluate("""(() => {
        const c = document.querySelector('.camera[data-id=gate] canvas');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
        let blue = 0, red = 0;
        for (let i = 0; i < d.length; i += 4) {
            if (d[i + 2] > 200 && d[i] < 120) blue++;
            if (d[i] > 200 && d[i + 1] < 120) red++;
        }
        return {blue, red};
    })()""")
    assert drawn["blue"] > 20 and drawn["red"] > 20  # the score line and the threshold line
    wait_for(lambda: browser.evaluate(
        "document.querySelector('.camera[data-id=gate] .snapshot').naturalWidth") == 96, 15,
        what="the snapshot image")


def test_page_scores_an_uploaded_clip_and_adds_a_camera(live, browser, mp4_clip):
    app = live()
    browser.goto(app.url + "/")
    wait_for(lambda: browser.evaluate("document.querySelector('#model').textContent").startswith("tiny"), 10)
    data = list(mp4_clip.read_bytes())
    browser.evaluate(f"""(() => {{
        const file = new File([new Uint8Array({data})], 'clip.mp4', {{type: 'video/mp4'}});
        const dt = new DataTransfer();
        dt.items.add(file);
        const input = document.querySelector('#score-form input[type=file]');
        input.files = dt.files;
        document.querySelector('#score-form button').click();
    }})()""")
    text = "document.querySelector('#clip-summary').textContent"
    summary = wait_for(lambda: "frames" in (s := browser.evaluate(text)) and s, 20, what="the clip result")
    assert summary.startswith("30 frames, 96x64")
    assert browser.evaluate("document.querySelector('#clip-chart').dataset.points") == "30"
    add_camera(browser, 'door', NOWHERE)
    wait_for(lambda: browser.evaluate("document.querySelectorAll('#cameras .camera').length") == 1, 10)
    assert app.client.get("/streams/door").status_code == 200
    add_camera(browser, 'bad', 'file:///etc/passwd')
    msg = wait_for(lambda: browser.evaluate("document.querySelector('#message').textContent").startswith("cannot")
                   and browser.evaluate("document.querySelector('#message').textContent"), 10)
    assert "422" in msg and "file sources" in msg
    assert app.client.get("/streams/door").json()["calibrate"] is True  # the form's calibrate box starts ticked


def test_page_scores_a_clip_on_the_scale_chosen(live, rtsp, browser, mp4_clip):
    server = rtsp()
    app = live(calibration_frames=10)
    assert app.client.post("/streams", json={"id": "door", "url": NOWHERE}).status_code == 201
    browser.goto(app.url + "/")
    calibration = "document.querySelector('.camera[data-id=door] .calibration').textContent"
    wait_for(lambda: browser.evaluate(calibration) == "calibrating 0/10", 10, what="the warm-up on the card")
    upload_clip(browser, mp4_clip)
    assert clip_summary(browser).endswith("on the checkpoint's scale")
    assert browser.evaluate("document.querySelector('#clip-chart').dataset.calibrating") == "0"
    upload_clip(browser, mp4_clip, "clip", seconds=0.4)
    assert clip_summary(browser).endswith("calibrated on the first 0.4 s (10 frames)")
    assert browser.evaluate("document.querySelector('#clip-chart').dataset.calibrating") == "10"
    upload_clip(browser, mp4_clip, "camera", camera="door")
    message = "document.querySelector('#message').textContent"
    msg = wait_for(lambda: (m := browser.evaluate(message)).startswith("cannot score") and m, 20, what="the refusal")
    assert "409" in msg and "still calibrating (0/10 frames)" in msg
    r = app.client.post("/streams", json={"id": "gate", "url": f"rtsp://127.0.0.1:{server.port}/cam"})
    assert r.status_code == 201
    options = "[...document.querySelectorAll('#score-form select[name=camera] option')].map(o => o.textContent)"
    wait_for(lambda: "gate (calibrated on 10 frames)" in browser.evaluate(options), 30, what="gate to calibrate")
    upload_clip(browser, mp4_clip, "camera", camera="gate")
    assert clip_summary(browser).endswith("with camera gate's calibration")


# Per window width: lines of camera text that wrapped (stats, badges), horizontal overflow, the failed card.
LAYOUT = """((failed) => {
    const lines = (el) => {
        const r = document.createRange();
        r.selectNodeContents(el);
        return new Set([...r.getClientRects()].filter((b) => b.width > 0).map((b) => Math.round(b.top))).size;
    };
    const visible = (el) => !!el && el.getClientRects().length > 0 && getComputedStyle(el).visibility !== 'hidden';
    const root = document.documentElement;
    const single = [...document.querySelectorAll('.camera .stats dt, .camera .stats dd, .camera header .pill')]
        .filter(visible);
    const card = document.querySelector(`.camera[data-id="${failed}"]`);
    const error = card && [...card.querySelectorAll('.cam-error')].find(visible);
    const box = error ? error.getBoundingClientRect() : null;
    return {
        width: root.clientWidth,
        overflow: root.scrollWidth - root.clientWidth,
        stats: single.filter((el) => el.matches('.stats dd')).length,
        wrapped: single.filter((el) => lines(el) !== 1).map((el) => el.textContent),
        split: [...document.querySelectorAll('.camera .stats dd')].filter(visible)
            .filter((dd) => Math.abs(dd.getBoundingClientRect().top - dd.previousElementSibling
                                     .getBoundingClientRect().top) > 2)
            .map((dd) => dd.previousElementSibling.textContent),
        outside: [...document.querySelectorAll('.camera')].filter((el) => el.getBoundingClientRect().right >
                                                                  root.clientWidth + 0.5).map((el) => el.dataset.id),
        state: card && visible(card.querySelector('.state')) ? card.querySelector('.state').textContent : null,
        error: error ? error.textContent : null,
        errorFits: !!box && box.left >= 0 && box.right <= root.clientWidth + 0.5
            && error.scrollWidth <= error.clientWidth,
    };
})"""


@pytest.mark.parametrize("width", [1280, 420])
def test_page_lays_camera_cards_out_at_any_width(live, rtsp, browser, width):
    """Stats and badges stay on one line each, nothing runs off the side, and a camera that gave up says so and
    why in words (not only a colour), in a wide window and a phone-narrow one."""
    server = rtsp()
    app = live(max_failures=1)
    failed = "loading_dock_north_entrance_7"
    for cam, url in (("gate", f"rtsp://127.0.0.1:{server.port}/cam"), (failed, NOWHERE + "/" + "x" * 120)):
        assert app.client.post("/streams", json={"id": cam, "url": url}).status_code == 201
    wait_for(lambda: app.client.get(f"/streams/{failed}").json()["state"] == "failed", 20, what="the camera to fail")
    reason = app.client.get(f"/streams/{failed}").json()["last_error"]
    assert reason
    browser.resize(width)
    browser.goto(app.url + "/")
    scored = ("Number([...document.querySelectorAll('.camera[data-id=gate] .stats dt')]"
              ".find((dt) => dt.textContent === 'scored')?.nextElementSibling.textContent) || 0")
    wait_for(lambda: browser.evaluate(scored) > 0, 30, what="frames scored on the gate's card")
    layout = wait_for(lambda: (r := browser.evaluate(f"{LAYOUT}({json.dumps(failed)})"))["error"] and r, 10,
                      what="the failed camera's error on its card")
    assert layout["width"] <= width and layout["stats"] >= 10, layout  # both cards drawn, in this window
    assert layout["wrapped"] == [], layout  # no stat value or badge broken over two lines
    assert layout["split"] == [], layout  # each stat's name and value side by side
    assert layout["overflow"] <= 0 and layout["outside"] == [], layout
    assert layout["state"] == "failed", layout
    assert reason in layout["error"] and "gave up" in layout["error"], layout
    assert layout["errorFits"], layout
