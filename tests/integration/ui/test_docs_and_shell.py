"""`/` leads to the dashboard, a wrong key is refused at sign-in, and `/docs` and `/redoc`
render the OpenAPI document from vendored assets: in headless Chromium, no request leaves the
machine."""

from __future__ import annotations

from tests.integration.ui.conftest import watch


async def test_docs_redoc_and_sign_in_work_offline(stack_factory, browser) -> None:
    stack = await stack_factory()
    base = stack.rt.api_url
    r = await stack.http.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/ui"
    r = await stack.http.get("/ui")
    assert r.status_code == 200 and r.headers["x-content-type-options"] == "nosniff"
    r = await stack.http.get("/ui/assets/../../app.py")
    assert r.status_code == 404
    r = await stack.http.get("/ui/api/endpoints")
    assert r.status_code == 401
    key = await stack.key("acme", "reader")

    w = await watch(browser, base)
    await w.page.goto(base + "/")
    await w.page.wait_for_selector("#signin-form")
    assert w.page.url == f"{base}/ui"
    await w.page.fill("#signin-key", "vk_not-a-key")
    await w.page.click("#signin-form button")
    await w.page.wait_for_function("document.getElementById('signin-error').textContent")
    assert "not valid" in await w.text("#signin-error")
    await w.shot("20-sign-in-refused")
    w.console_errors.clear()  # the refused key's 401 is logged by the browser, as it should be
    await w.sign_in(key)
    await w.open("/endpoints", page_name="endpoints")
    await w.page.click("#signout")
    await w.page.wait_for_selector("#signin-form", state="visible")
    assert await w.page.evaluate("sessionStorage.length") == 0

    await w.page.goto(base + "/docs")
    await w.page.wait_for_selector(".swagger-ui .info .title")
    assert "Vitals query API" in await w.text(".swagger-ui .info .title")
    await w.page.wait_for_selector(".opblock-summary-path[data-path='/get_endpoint_stats/']")
    await w.shot("21-docs", full_page=False)
    await w.page.goto(base + "/redoc")
    await w.page.wait_for_selector("h1:has-text('Vitals query API')", timeout=30_000)
    await w.shot("22-redoc", full_page=False)  # the whole reference is very tall
    assert w.console_errors == [], w.console_errors
    assert w.external == [], w.external
    await w.context.close()
