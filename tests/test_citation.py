"""LICENSE and CITATION.cff: present, consistent with pyproject, and the CFF is valid YAML with the keys
CFF 1.2.0 requires."""
import re
import tomllib

import yaml

from nnlens import paths

PAPERS = ("2309.15328", "2305.14585", "2211.06506", "2307.11684", "2205.12372")
DATA_SETS = {"The MNIST database of handwritten digits": ("CC-BY-SA-3.0", None),   # title: (licence, arXiv id)
             "Fashion-MNIST: a Novel Image Dataset for Benchmarking Machine Learning Algorithms": ("MIT", "1708.07747")}


def test_license_is_mit_as_pyproject_says():
    pyproject = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())
    assert pyproject["project"]["license"] == "MIT"
    text = (paths.ROOT / "LICENSE").read_text()
    assert text.startswith("MIT License") and "Copyright (c) 2026 nnlens contributors" in text


def test_citation_cff_loads_and_cites_the_five_papers_and_the_data_sets():
    cff = yaml.safe_load((paths.ROOT / "CITATION.cff").read_text())
    assert cff["cff-version"] == "1.2.0"
    for key in ("message", "title", "authors"):       # required at the top level by the CFF 1.2.0 schema
        assert cff[key], key
    assert cff["type"] == "software" and cff["license"] == "MIT"
    pyproject = tomllib.loads((paths.ROOT / "pyproject.toml").read_text())
    assert str(cff["version"]) == pyproject["project"]["version"]
    cited, data_sets = [], {}
    for ref in cff["references"]:
        for key in ("type", "title", "authors"):      # required in every reference
            assert ref[key], (key, ref)
        assert all(set(a) & {"name", "family-names"} for a in ref["authors"])
        arxiv = re.findall(r"arxiv\.org/abs/(\d{4}\.\d{5})$", ref["url"])
        if arxiv:
            assert ref["identifiers"] == [{"type": "doi", "value": f"10.48550/arXiv.{arxiv[0]}",
                                           "description": f"arXiv:{arxiv[0]}"}]
        if ref["title"] in DATA_SETS:
            data_sets[ref["title"]] = (ref["license"], arxiv[0] if arxiv else None)
        else:
            cited.extend(arxiv)
    assert sorted(cited) == sorted(PAPERS)
    assert data_sets == DATA_SETS
