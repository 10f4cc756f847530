#!/usr/bin/env python3
"""Drives vouch's web pages in a real browser (Debian's headless Chromium,
through chromedriver and selenium), as a user would: navigates from the
overview to a denied image and reads its reasons, then opens an admitted
image and checks its inclusion proof in the browser (WebCrypto), then
tampers with one proof hash and sees the check fail.

    python3 tests/ui_browser.py http://127.0.0.1:PORT REPO DENIED_DIGEST \
        ADMITTED_DIGEST [SCREENSHOT.png]

Exits non-zero with the reason on the first thing that is not as expected.
"""
import base64
import json
import sys

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

base, repo, denied, admitted = sys.argv[1:5]
screenshot = sys.argv[5] if len(sys.argv) > 5 else None


def fail(why):
    print(f"ui_browser: {why}", file=sys.stderr)
    sys.exit(1)


options = webdriver.ChromeOptions()
for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,1600"):
    options.add_argument(arg)
options.binary_location = "/usr/bin/chromium"
driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
wait = WebDriverWait(driver, 20)
try:
    # Overview: denials come first, and lead to the denied image's page.
    driver.get(base + "/ui/")
    headings = [h.text for h in driver.find_elements(By.TAG_NAME, "h2")]
    if not headings or headings[0] != "Denials first":
        fail(f"the overview does not start with the denials: {headings}")
    link = driver.find_element(By.XPATH, f"//a[code[contains(., '{denied[:23]}')]]")
    link.click()
    wait.until(ec.title_contains("Image"))
    body = driver.find_element(By.TAG_NAME, "main").text
    if "denied" not in body or "no rule of policy" not in body:
        fail(f"the denied image's page does not show its verdict and reasons:\n{body[:800]}")

    # Navigation: sections reach the repository, whose table lists both.
    driver.find_element(By.LINK_TEXT, "Repositories").click()
    driver.find_element(By.LINK_TEXT, repo).click()
    table = driver.find_element(By.TAG_NAME, "table").text
    if "admitted" not in table or "denied" not in table:
        fail(f"the repository page does not list both verdicts:\n{table}")
    driver.find_element(By.XPATH, f"//a[code[contains(., '{admitted[:23]}')]]").click()
    wait.until(ec.title_contains("Image"))

    # The proof, checked in the browser.
    result = driver.find_element(By.ID, "proof-result")
    driver.find_element(By.ID, "verify-proof").click()
    wait.until(lambda d: result.get_attribute("data-outcome"))
    if result.get_attribute("data-outcome") != "verified" or "admitted" not in result.text:
        fail(f"the proof did not verify in the browser: {result.text}")
    print(f"browser: {result.text}")
    if screenshot:
        driver.save_screenshot(screenshot)

    # Tampered: one hash of the decision's inclusion proof changed.
    area = driver.find_element(By.ID, "bundle")
    bundle = json.loads(area.get_attribute("value"))
    lines = bundle["decision"]["proof"].split("\n")
    at = next((i for i, l in enumerate(lines) if i > 1 and len(l) == 44 and l.endswith("=")), None)
    if at is None:
        fail(f"the decision's proof has no hash to tamper with:\n{bundle['decision']['proof']}")
    raw = bytearray(base64.b64decode(lines[at]))
    raw[0] ^= 1
    lines[at] = base64.b64encode(bytes(raw)).decode()
    bundle["decision"]["proof"] = "\n".join(lines)
    driver.execute_script("arguments[0].value = arguments[1];", area, json.dumps(bundle))
    driver.execute_script("arguments[0].removeAttribute('data-outcome');", result)
    driver.find_element(By.ID, "verify-proof").click()
    wait.until(lambda d: result.get_attribute("data-outcome"))
    if result.get_attribute("data-outcome") != "failed" or "FAILED" not in result.text:
        fail(f"a tampered proof was not refused: {result.text}")
    print(f"browser, tampered: {result.text}")
finally:
    driver.quit()
