"""The provenance console end to end in a real browser: Debian's headless `chromium`, driven
by Selenium through Debian's `chromium-driver` (both installed with apt-get when missing;
Selenium never downloads a browser or driver here: both paths are given).

Screenshots go to the test's tmp dir and, when S3FACADE_SCREENSHOTS names a directory,
there too."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support import expected_conditions
from selenium.webdriver.support.ui import WebDriverWait

from s3facade.registry.log import RECORD_LAG_SECONDS
from tests.access_server import ALICE, SECRETS, Clients
from tests.debian_packages import ensure_installed

CONSOLE = "/-/console"


@pytest.fixture
def chrome(monkeypatch: pytest.MonkeyPatch) -> Iterator[WebDriver]:
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager must fetch nothing
    options = webdriver.ChromeOptions()
    options.binary_location = ensure_installed("chromium")
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
        "--no-first-run", "--disable-extensions", "--window-size=1400,1800",
    ):  # fmt: skip
        options.add_argument(argument)
    service = Service(executable_path=ensure_installed("chromedriver", "chromium-driver"))
    driver = webdriver.Chrome(service=service, options=options)
    driver.implicitly_wait(5)
    try:
        yield driver
    finally:
        driver.quit()


class Screens:
    def __init__(self, driver: WebDriver, tmp_path: Path) -> None:
        self.driver, self.tmp_path = driver, tmp_path
        self.saved: list[Path] = []

    def save(self, name: str) -> Path:
        path = self.tmp_path / f"console-{name}.png"
        assert self.driver.save_screenshot(str(path)), name
        assert path.stat().st_size > 10_000, f"{name}: an empty screenshot"
        wanted = os.environ.get("S3FACADE_SCREENSHOTS")
        if wanted:
            Path(wanted).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(wanted) / path.name)
        self.saved.append(path)
        return path


def follow(driver: WebDriver, element: WebElement) -> None:
    """Click, and wait until the next page has replaced this one."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 15).until(expected_conditions.staleness_of(page))


def provenance_story(users: Clients) -> tuple[str, str, str]:
    """A release written with provenance and a retention, locked, tagged, copied and read."""
    bucket = users.bucket(users.alice, ObjectLockEnabledForBucket=True)
    key, copy = "app/1.2.0/app.tar.gz", "app/latest/app.tar.gz"
    s3: Any = users.alice
    s3.put_object(
        Bucket=bucket,
        Key=key,
        Body=b"release bytes " * 1000,
        Metadata={"source-commit": "9f3c2e1", "build-id": "4711", "pipeline": "release"},
    )
    until = datetime.now(UTC) + timedelta(days=2)
    s3.put_object_retention(
        Bucket=bucket, Key=key, Retention={"Mode": "GOVERNANCE", "RetainUntilDate": until}
    )
    s3.put_object_legal_hold(Bucket=bucket, Key=key, LegalHold={"Status": "ON"})
    s3.put_object_tagging(
        Bucket=bucket, Key=key, Tagging={"TagSet": [{"Key": "stage", "Value": "prod"}]}
    )
    s3.copy_object(Bucket=bucket, Key=copy, CopySource={"Bucket": bucket, "Key": key})
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read().startswith(b"release bytes")
    time.sleep(RECORD_LAG_SECONDS + 0.5)  # a read record rides the next commit, or this late
    return bucket, key, copy


def test_console_in_a_real_browser(users: Clients, chrome: WebDriver, tmp_path: Path) -> None:
    bucket, key, copy = provenance_story(users)
    screens = Screens(chrome, tmp_path)
    endpoint = users.server.endpoint

    chrome.get(f"{endpoint}{CONSOLE}/buckets")  # not signed in: the sign-in page
    assert "/sign-in" in chrome.current_url
    screens.save("sign-in")
    chrome.find_element(By.ID, "access_key").send_keys(ALICE.access_key)
    chrome.find_element(By.ID, "secret").send_keys(SECRETS[ALICE.access_key])
    follow(chrome, chrome.find_element(By.ID, "sign-in"))
    assert chrome.current_url.endswith(f"{CONSOLE}/buckets")
    assert "Alice" in chrome.find_element(By.ID, "who").text
    # The stylesheet came from the package under the page's CSP (no CDN, no inline style).
    header = chrome.find_element(By.TAG_NAME, "header")
    assert header.value_of_css_property("background-color") == "rgba(29, 35, 48, 1)"
    screens.save("buckets")

    follow(chrome, chrome.find_element(By.LINK_TEXT, bucket))
    follow(chrome, chrome.find_element(By.LINK_TEXT, "app/"))
    follow(chrome, chrome.find_element(By.LINK_TEXT, "1.2.0/"))
    screens.save("keys")
    follow(chrome, chrome.find_element(By.LINK_TEXT, "app.tar.gz"))
    assert chrome.find_element(By.TAG_NAME, "h1").text == key

    timeline = chrome.find_element(By.ID, "timeline-table")
    kinds = [e.text for e in timeline.find_elements(By.CSS_SELECTOR, "tbody td:nth-child(3)")]
    assert kinds == [
        "written", "retention set", "legal hold set", "tags set", "copied out", "read",
    ], kinds  # fmt: skip
    text = timeline.text
    assert "build_id=4711" in text and "source_commit=9f3c2e1" in text
    assert "Alice" in text and "boto3" in text  # the writer by display name, and its tool
    assert "stage=prod" in text and "GOVERNANCE until" in text

    lineage = chrome.find_element(By.ID, "lineage")
    nodes = lineage.find_elements(By.CSS_SELECTOR, "svg#lineage-graph g.node")
    assert len(nodes) == 2
    assert len(lineage.find_elements(By.CSS_SELECTOR, "svg#lineage-graph g.node.copy")) == 1
    assert f"copied to s3://{bucket}/{copy}" in lineage.find_element(By.ID, "lineage-list").text

    retention = chrome.find_element(By.ID, "retention-table").text
    assert "protected now yes" in retention
    assert "mode GOVERNANCE" in retention and "legal hold on" in retention

    verify = chrome.find_element(By.ID, "verify")
    assert verify.find_element(By.ID, "verify-status").text.startswith("Status: ok (checked ")
    assert verify.find_element(By.ID, "blob-check").get_attribute("class") == "ok"
    assert "14000 bytes hash to the recorded sha256" in verify.text
    assert verify.find_element(By.ID, "chain-check").get_attribute("class") == "ok"
    screens.save("object")
    chrome.execute_script("window.scrollTo(0, document.body.scrollHeight)")
    screens.save("object-bottom")

    # Follow the lineage to the copy: it names its source.
    lineage = chrome.find_element(By.ID, "lineage-list")
    follow(chrome, lineage.find_element(By.LINK_TEXT, f"s3://{bucket}/{copy}"))
    assert chrome.find_element(By.TAG_NAME, "h1").text == copy
    sources = chrome.find_element(By.ID, "lineage-list").text
    assert f"copied from s3://{bucket}/{key}" in sources
    kinds = [
        e.text
        for e in chrome.find_elements(By.CSS_SELECTOR, "#timeline-table tbody td:nth-child(3)")
    ]
    assert kinds == ["copied in"]
    screens.save("copy")

    follow(chrome, chrome.find_element(By.ID, "sign-out"))
    assert "/sign-in" in chrome.current_url
    chrome.get(f"{endpoint}{CONSOLE}/buckets")
    assert "/sign-in" in chrome.current_url
    assert len(screens.saved) == 6
