from pathlib import Path

from glimpse3d.config import Settings, env_example

ROOT = Path(__file__).resolve().parents[1]


def test_env_example_lists_every_setting():
    text = (ROOT / ".env.example").read_text()
    for name in Settings.model_fields:
        assert f"GLIMPSE3D_{name.upper()}=" in text, name
    # generated, not hand-kept: `python -m glimpse3d.config > .env.example`
    assert text == env_example()


def test_settings_read_prefixed_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("GLIMPSE3D_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("GLIMPSE3D_DEPTH_BACKEND", "transformers")
    monkeypatch.setenv("GLIMPSE3D_CORS_ORIGINS", '["http://a.example"]')
    s = Settings()
    assert s.depth_backend == "transformers"
    assert s.cors_origins == ["http://a.example"]
    assert s.resolved_database_url == f"sqlite:///{tmp_path.resolve()}/glimpse3d.db"
    assert s.resolved_storage_url == str((tmp_path / "storage").resolve())
