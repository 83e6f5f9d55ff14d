#!/usr/bin/env python3
"""Opens the built page (scripts/web.sh) in headless Chromium on WebGPU, waits for its encode of
the default photo with each shipped tiny model, checks what the page shows against the golden
cases, and saves a screenshot of the first.

    scripts/web_page_check.py [--screenshot docs/web-page.png] [--models pixels_llava_next,...]

Talks WebDriver to Debian's chromedriver over HTTP with the standard library only (no Selenium or
Playwright download); the browser flags are web/webdriver.json's, which the browser tests use.
Exits non-zero, saying why, when the browser or the page fails: never a silent skip.
"""
import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Tokens each shipped model gives for coffee.png (400 high × 600 wide): the golden `output` shapes' token axis.
EXPECTED_TOKENS = {"pixels_llava_next": 70, "pixels_llava_clip": 16, "pixels_blip2": 8}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, what, proc, seconds=30):
    end = time.time() + seconds
    while time.time() < end:
        if proc.poll() is not None:
            sys.exit(f"web_page_check: {what} exited with {proc.returncode} before listening")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"web_page_check: {what} is not listening on port {port} after {seconds} s")


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=600) as r:
            return json.load(r)["value"]
    except urllib.error.HTTPError as e:
        sys.exit(f"web_page_check: WebDriver {method} {path}: {e.code} {e.read().decode(errors='replace')[:2000]}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--screenshot", help="PNG path for the first model's page")
    ap.add_argument("--models", default=",".join(EXPECTED_TOKENS))
    ap.add_argument("--timeout", type=float, default=300)
    args = ap.parse_args()
    if not os.path.exists(os.path.join(ROOT, "web/pkg/vlm_connectors_web.js")):
        sys.exit("web_page_check: web/pkg is not built: run scripts/web.sh first")
    with open(os.path.join(ROOT, "web/webdriver.json")) as f:
        chrome = json.load(f)["goog:chromeOptions"]
    chrome["binary"] = os.environ.get("CHROMIUM", shutil.which("chromium") or chrome["binary"])
    driver_bin = os.environ.get("CHROMEDRIVER", shutil.which("chromedriver") or "/usr/bin/chromedriver")
    for path in (chrome["binary"], driver_bin):
        if not os.path.exists(path):
            sys.exit(f"web_page_check: no {path} (apt-get install chromium chromium-driver)")
    profile = f"/tmp/vlmc-web-check-{os.getpid()}"
    chrome["args"] = chrome["args"] + ["--window-size=1300,2450", f"--user-data-dir={profile}"]
    http_port, driver_port = free_port(), free_port()
    # Own process groups: chromedriver's browsers go down with it.
    server = subprocess.Popen([sys.executable, "-m", "http.server", str(http_port), "--bind", "127.0.0.1"], cwd=ROOT,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    driver = subprocess.Popen([driver_bin, f"--port={driver_port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                              start_new_session=True)
    failures = []
    try:
        wait_port(http_port, "the HTTP server", server)
        wait_port(driver_port, "chromedriver", driver)
        base = f"http://127.0.0.1:{driver_port}"
        sid = call(base, "POST", "/session", {"capabilities": {"alwaysMatch": {"goog:chromeOptions": chrome}}})["sessionId"]
        try:
            for i, model in enumerate(args.models.split(",")):
                url = f"http://127.0.0.1:{http_port}/web/?model={model}&photo=coffee.png"
                call(base, "POST", f"/session/{sid}/url", {"url": url})
                end, state = time.time() + args.timeout, "starting"
                t0 = time.time()
                while time.time() < end:
                    state = call(base, "POST", f"/session/{sid}/execute/sync", {"script": "return document.body.dataset.state", "args": []})
                    if state in ("done", "error"):
                        break
                    time.sleep(0.5)
                page = call(base, "POST", f"/session/{sid}/execute/sync", {"script": """return {
                    error: document.getElementById('error').hidden ? null : document.getElementById('error').textContent,
                    adapter: document.getElementById('adapter').textContent,
                    caption: document.getElementById('tiling-caption').textContent,
                    budget: document.querySelector('#budget svg') ? document.querySelector('#budget svg').textContent : null,
                    result: window.lastResult || null}""", "args": []})
                print(f"{model}: state {state} after {time.time() - t0:.1f} s · {page['adapter']}")
                if state != "done":
                    failures.append(f"{model}: the page ended in state `{state}`: {page['error']}")
                    continue
                r = page["result"]
                print(f"  {page['caption']}")
                gpu = "—" if r["gpu_ms"] is None else f"{r['gpu_ms']:.1f}"
                print(f"  tokens {r['tokens']}, output {r['output_shape']}, preprocess {r['preprocess_ms']:.1f} ms, first run "
                      f"{r['first_run_ms']:.1f} ms, forward {r['wall_ms']:.1f} ms wall, {gpu} ms GPU timestamps")
                want = EXPECTED_TOKENS.get(model)
                if want is not None and r["tokens"] != want:
                    failures.append(f"{model}: the page shows {r['tokens']} tokens, the golden case has {want}")
                if not r["runs_agree"]:
                    failures.append(f"{model}: two runs of the same image differ")
                if not page["budget"] or "this model" not in page["budget"]:
                    failures.append(f"{model}: the budget chart is missing or has no measured row")
                if "tower input" not in page["caption"]:
                    failures.append(f"{model}: no tiling caption")
                if i == 0 and args.screenshot:
                    png = base64.b64decode(call(base, "GET", f"/session/{sid}/screenshot"))
                    with open(args.screenshot, "wb") as f:
                        f.write(png)
                    print(f"  screenshot: {args.screenshot} ({len(png)} bytes)")
        finally:
            try:
                urllib.request.urlopen(urllib.request.Request(f"{base}/session/{sid}", method="DELETE"), timeout=30).close()
            except OSError as e:
                print(f"web_page_check: closing the browser: {e}")
    finally:
        for proc in (driver, server):
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                os.killpg(proc.pid, signal.SIGKILL)
        shutil.rmtree(profile, ignore_errors=True)
    if failures:
        sys.exit("web_page_check: FAILED\n" + "\n".join(failures))
    print("web_page_check: the page works in headless Chromium")


if __name__ == "__main__":
    main()
