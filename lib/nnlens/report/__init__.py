"""The report wing: where outputs go, figures, tables, the claims ledger and provenance.

Above the science core, below the studies: a study's notebook makes one ``Outputs`` (through
``studies.profiles.start``) and passes it to everything that writes.

| module          | owns                                                                    |
|-----------------|-------------------------------------------------------------------------|
| ``outputs``     | ``Outputs(root)``: figures/, tables/, claims/, manifests/, bench/        |
| ``figures``     | the one plotting style, byte-stable PNG + PDF (``savefig``)              |
| ``tables``      | ``save_table`` (CSV + Markdown, one float format), ``to_markdown``       |
| ``ledger``      | ``Row``, ``Ledger``, ``claims.md``                                       |
| ``provenance``  | the run manifest: config, versions, commit, machine, torch, data hashes  |
"""
from .figures import savefig, use_style
from .ledger import KINDS, VERDICTS, Ledger, Row, Threshold, build_claims_md, claims_md_text, counts, load_claims
from .outputs import Outputs
from .provenance import write_manifest
from .tables import save_table, to_markdown

__all__ = ["KINDS", "VERDICTS", "Ledger", "Outputs", "Row", "Threshold", "counts", "build_claims_md", "claims_md_text",
           "load_claims", "savefig", "save_table", "to_markdown", "use_style", "write_manifest"]
