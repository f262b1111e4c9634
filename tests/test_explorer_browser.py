"""The explorer page in a real browser (headless Chromium driven by Selenium) against a real server:
type a name, read the substitutes, follow a spelling suggestion, complete a recipe, and show every
name as text, including names that look like markup. The test writes a screenshot."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from flavor_ml.embeddings import IngredientEmbeddings
from tests.support.api_server import api_server
from tests.support.serving import INGREDIENTS, RegistryStore, unique_model_name

pytestmark = pytest.mark.slow

# No underscores: the word2vec format stores spaces as underscores, so a name must not hold one.
HOSTILE = '<img src=x onerror="document.body.dataset.pwned=1"> pie'
TYPED_SCRIPT = "<script>document.body.dataset.pwned=2</script>"
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,1100",
)
WAIT = 20.0


def chromium_binaries() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def install_chromium() -> str | None:
    """Install Debian's chromium and chromium-driver; None on success, else why it could not be done."""
    if not shutil.which("apt-get"):
        return "apt-get is not available (not a Debian-like system)"
    if os.geteuid() != 0:
        return "installing packages needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update"], ["apt-get", "install", "-y", "chromium", "chromium-driver"]):
        done = subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=900)
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {(done.stderr or done.stdout)[-500:]}"
    return None


@pytest.fixture(scope="module")
def chromium() -> tuple[str, str]:
    found = chromium_binaries()
    if found is None:
        problem = install_chromium()
        found = chromium_binaries()
        if found is None:
            pytest.skip(f"headless Chromium is not installed and could not be installed: {problem}")
    return found


def explorer_model() -> IngredientEmbeddings:
    """Random vectors for the test names plus one that looks like markup, placed next to basil."""
    names = (*INGREDIENTS, HOSTILE)
    rng = np.random.default_rng(11)
    inputs = rng.normal(size=(len(names), 8)).astype(np.float32)
    inputs[-1] = inputs[names.index("basil")] + 0.01
    outputs = rng.normal(size=(len(names), 8)).astype(np.float32)
    return IngredientEmbeddings(names, inputs, outputs, np.arange(len(names), 0, -1, dtype=np.int64))


@pytest.fixture(scope="module")
def served(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """A promoted model served by `flavor-ml serve`, without an admin token; (base URL, version)."""
    root = tmp_path_factory.mktemp("explorer")
    store = RegistryStore.create(f"sqlite:///{root / 'mlflow.db'}", root / "scratch", (root / "artifacts").as_uri())
    name = unique_model_name()
    with store.active():
        version = store.log_version(name, explorer_model())
        store.promote(name, version)
    with api_server(store.tracking_uri, name, root / "serve.log", token=None) as base:
        yield base, version


@pytest.fixture
def browser(chromium, tmp_path) -> Iterator[object]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot_path(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("FLAVOR_TEST_SCREENSHOTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "explorer.png"


def test_the_explorer_looks_up_names_follows_suggestions_completes_a_recipe_and_escapes_everything(
    served, browser, tmp_path
):
    from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    base, version = served
    # The page redraws a list when a newer answer arrives: an element read meanwhile is stale, and
    # every wait reads it again.
    wait = WebDriverWait(browser, WAIT, ignored_exceptions=(StaleElementReferenceException,))
    browser.get(f"{base}/")

    # the version being served
    status = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#model-status[data-version]")))
    assert status.get_attribute("data-version") == version
    assert f"version {version}" in status.text and f"{len(INGREDIENTS) + 1} ingredients" in status.text

    def ranked(list_id: str, count: int) -> list[str]:
        def names(driver):
            found = [e.text for e in driver.find_elements(By.CSS_SELECTOR, f"#{list_id} li .name")]
            return found if len(found) == count else False

        return wait.until(names)

    # type a name as a cook writes it: substitutes and complements with scores
    box = browser.find_element(By.ID, "ingredient")
    box.clear()
    box.send_keys("Basil\n")
    substitutes = ranked("substitutes", 10)
    assert substitutes[0] == HOSTILE  # planted next to basil, and shown exactly as its text
    assert "basil" not in substitutes and set(substitutes) <= {*INGREDIENTS, HOSTILE}
    assert len(ranked("complements", 10)) == 10
    scores = wait.until(lambda d: [float(e.text) for e in d.find_elements(By.CSS_SELECTOR, "#substitutes li .score")])
    assert scores == sorted(scores, reverse=True)

    # an unknown spelling: the error, and suggestions that look the right name up
    box.clear()
    box.send_keys("oregeno\n")
    suggestion = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#suggestions button.suggestion")))
    assert suggestion.text == "oregano"
    assert "not in version" in browser.find_element(By.ID, "lookup-message").text
    suggestion.click()
    wait.until(lambda d: d.find_element(By.ID, "ingredient").get_attribute("value") == "oregano")
    assert "oregano" not in ranked("substitutes", 10)

    # markup typed by the user is shown as text and never runs
    box.clear()
    box.send_keys(TYPED_SCRIPT + "\n")
    wait.until(lambda d: TYPED_SCRIPT in d.find_element(By.ID, "lookup-message").text)

    # complete a recipe, one unknown spelling in it
    recipe_box = browser.find_element(By.ID, "recipe-input")
    for typed in ("tomato", "2 cloves garlic, crushed", "Oregeno"):
        recipe_box.send_keys(typed + "\n")
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#recipe li")) == 3)
    wait.until(lambda d: "tomato, garlic" in d.find_element(By.ID, "recipe-message").text)
    completions = ranked("completions", 10)
    assert not {"tomato", "garlic"} & set(completions)
    fix = wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#recipe-suggestions button.suggestion")))
    assert fix.text == "oregano"
    fix.click()
    wait.until(lambda d: "tomato, garlic, oregano" in d.find_element(By.ID, "recipe-message").text)
    assert "oregano" not in ranked("completions", 10)
    hostile_chip_free = wait.until(lambda d: [e.text for e in d.find_elements(By.CSS_SELECTOR, "#recipe li .name")])
    assert hostile_chip_free == ["tomato", "2 cloves garlic, crushed", "oregano"]

    # add the markup-looking name from a result list to the recipe: still text
    browser.find_element(By.ID, "ingredient").clear()
    browser.find_element(By.ID, "ingredient").send_keys("basil\n")
    ranked("substitutes", 10)
    browser.find_element(By.CSS_SELECTOR, "#substitutes li button.add").click()
    wait.until(lambda d: HOSTILE in [e.text for e in d.find_elements(By.CSS_SELECTOR, "#recipe li .name")])

    assert browser.find_elements(By.TAG_NAME, "img") == []
    assert browser.execute_script("return document.body.dataset.pwned === undefined")
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018
    shot = screenshot_path(tmp_path)
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
