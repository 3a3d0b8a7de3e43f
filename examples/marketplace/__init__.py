"""An example marketplace on router: FastAPI + SQLAlchemy async, and a Flask variant."""
