"""README.md's settings table is the one `Settings` renders, and it names every setting."""

from pathlib import Path

from pydantic import BaseModel, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from app.core import settings_doc
from app.core.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def _env_names(model: type[BaseModel], prefix: str) -> list[str]:
    names: list[str] = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            names += _env_names(annotation, f"{prefix}{name.upper()}__")
        else:
            names.append(f"{prefix}{name.upper()}")
    return names


def test_readme_section_is_the_generated_table() -> None:
    documented = settings_doc.section(README.read_text(encoding="utf-8"))
    assert documented == settings_doc.render_table(), (
        "README.md's settings table differs from `Settings`; regenerate it with "
        f"`{settings_doc.WRITE_COMMAND}`"
    )


def test_every_setting_has_a_row() -> None:
    rows = [doc.env for doc in settings_doc.setting_docs()]
    assert rows == _env_names(Settings, "TRIAGE_")
    table = settings_doc.render_table()
    for name in rows:
        assert f"| `{name}` |" in table


def test_rows_show_docstrings_descriptions_and_gaps() -> None:
    class Group(BaseModel):
        size: int = Field(default=3, ge=1, le=9)
        """How many | at once."""

    class Demo(BaseSettings):
        model_config = SettingsConfigDict(env_prefix="DEMO_", env_nested_delimiter="__")

        url: str = Field(default="x", description="Where it lives.")
        undocumented: bool = False
        group: Group = Group()

    assert settings_doc.setting_docs(Demo) == [
        settings_doc.SettingDoc("DEMO_URL", "`x`", "text", "Where it lives."),
        settings_doc.SettingDoc("DEMO_UNDOCUMENTED", "`false`", "true or false", ""),
        settings_doc.SettingDoc(
            "DEMO_GROUP__SIZE", "`3`", "integer >= 1, <= 9", "How many \\| at once."
        ),
    ]


def test_write_replaces_only_the_marked_section(tmp_path: Path) -> None:
    target = tmp_path / "README.md"
    before = f"# Title\n\n{settings_doc.BEGIN}\nold table\n{settings_doc.END}\n\nAfter.\n"
    target.write_text(before, encoding="utf-8")
    assert settings_doc.main(["--write", str(target)]) == 0
    written = target.read_text(encoding="utf-8")
    assert written.startswith(f"# Title\n\n{settings_doc.BEGIN}\n| Variable |")
    assert written.endswith(f"{settings_doc.END}\n\nAfter.\n")
    assert settings_doc.section(written) == settings_doc.render_table()
    assert settings_doc.main(["--write", str(target)]) == 0
    assert target.read_text(encoding="utf-8") == written


def test_write_refuses_a_file_without_markers(tmp_path: Path) -> None:
    target = tmp_path / "README.md"
    target.write_text("# No markers\n", encoding="utf-8")
    assert settings_doc.main(["--write", str(target)]) == 1
    assert target.read_text(encoding="utf-8") == "# No markers\n"
