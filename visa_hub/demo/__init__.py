"""Demo site data shipped with visa-hub: a site catalog and a User Office with demo people."""

from pathlib import Path

DEMO_DIR = Path(__file__).parent
DEMO_CATALOG = DEMO_DIR / "catalog.yaml"
DEMO_USER_OFFICE = DEMO_DIR / "useroffice.yaml"
