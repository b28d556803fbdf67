"""LICENSE and CITATION.cff: present, consistent with pyproject, and the CFF is valid YAML with the keys
CFF 1.2.0 requires."""
import re
import tomllib

import yaml

from nnlens import paths

PAPERS = ("2309.15328", "2305.14585", "2211.06506", "2307.11684", "2205.12372")


def test_license_is_mit_as_pyproject_says():
    pyproject = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "MIT"
    text = (paths.ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 nnlens contributors" in text


def test_citation_cff_loads_and_cites_the_five_papers():
    cff = yaml.safe_load((paths.ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):       # required at the top level by the CFF 1.2.0 schema
        assert cff[key], key
    assert cff["type"] == "software" and cff["license"] == "MIT"
    pyproject = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())
    assert str(cff["version"]) == pyproject["project"]["version"]
    cited = []
    for ref in cff["references"]:
        for key in ("type", "title", "authors"):      # required in every reference
            assert ref[key], (key, ref)
        assert all(set(a) & {"name", "family-names"} for a in ref["authors"])
        (arxiv,) = re.findall(r"arxiv\.org/abs/(\d{4}\.\d{5})$", ref["url"])
        assert ref["identifiers"] == [{"type": "doi", "value": f"10.48550/arXiv.{arxiv}",
                                       "description": f"arXiv:{arxiv}"}]
        cited.append(arxiv)
    assert sorted(cited) == sorted(PAPERS)
