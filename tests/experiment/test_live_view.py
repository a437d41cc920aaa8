"""The live view: how to open Ray's dashboard with its token, named trial actors, pending trials."""

from __future__ import annotations

from raytune_opt.experiment.run import dashboard_line


def test_the_dashboard_line_says_where_the_token_is_never_the_token(monkeypatch) -> None:
    assert dashboard_line("127.0.0.1:8265", token_auth=False) == "Ray dashboard: http://127.0.0.1:8265"
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    line = dashboard_line("127.0.0.1:8265", token_auth=True)
    assert line.startswith("Ray dashboard: http://127.0.0.1:8265 ")
    assert "~/.ray/auth_token" in line and "`ray get-auth-token`" in line
    monkeypatch.setenv("RAY_AUTH_TOKEN_PATH", "/secrets/ray-token")
    assert "the file /secrets/ray-token" in dashboard_line("h:8265", token_auth=True)
    monkeypatch.setenv("RAY_AUTH_TOKEN", "s3cr3t-token-value")
    line = dashboard_line("h:8265", token_auth=True)
    assert "$RAY_AUTH_TOKEN" in line and "s3cr3t-token-value" not in line
