"""features.toml, the manifest of what each optional feature owns, matches the template."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from support import BOOLEAN_PROMPTS, COOKIECUTTER_JSON, FEATURES, MANIFEST, TEMPLATE_PROJECT

FEATURE_NAMES = sorted(FEATURES)


def test_manifest_has_features() -> None:
    assert set(MANIFEST) == {"features"}, "features.toml holds only [features.<name>] tables"
    assert FEATURES, "features.toml lists no feature"


@pytest.mark.parametrize("name", FEATURE_NAMES)
def test_feature_entry_shape(name: str) -> None:
    feature = FEATURES[name]
    assert set(feature) == {"prompt", "paths"}, f"[features.{name}] needs exactly prompt and paths"
    assert isinstance(feature["prompt"], str)
    assert isinstance(feature["paths"], list)
    assert all(isinstance(p, str) for p in feature["paths"])
    assert len(set(feature["paths"])) == len(feature["paths"]), "a path is listed twice"


@pytest.mark.parametrize("name", FEATURE_NAMES)
def test_feature_paths_exist_in_template(name: str) -> None:
    bad = []
    for raw in FEATURES[name]["paths"]:
        path = PurePosixPath(raw)
        if path.is_absolute() or ".." in path.parts or raw != str(path) or raw in ("", "."):
            bad.append(f"{raw} (must be a plain path relative to the project root)")
        elif not (TEMPLATE_PROJECT / raw).exists():
            bad.append(f"{raw} (not in {TEMPLATE_PROJECT.name}/)")
        elif raw == "features.toml":
            bad.append(f"{raw} (the manifest itself)")
    assert not bad, f"[features.{name}] paths:\n  " + "\n  ".join(bad)


@pytest.mark.parametrize("name", FEATURE_NAMES)
def test_feature_prompt_is_a_boolean_defaulting_to_false(name: str) -> None:
    prompt = FEATURES[name]["prompt"]
    assert prompt in COOKIECUTTER_JSON, f"cookiecutter.json has no {prompt}"
    assert COOKIECUTTER_JSON[prompt] is False, f"{prompt} must be the JSON boolean false"


@pytest.mark.parametrize("prompt", BOOLEAN_PROMPTS)
def test_boolean_prompt_has_a_manifest_entry(prompt: str) -> None:
    owners = [name for name, f in FEATURES.items() if f.get("prompt") == prompt]
    assert len(owners) == 1, f"{prompt} needs exactly one [features.<name>] entry, found {owners}"
