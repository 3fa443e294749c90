"""data/model/run.json: the run and models `train` recorded, for the stages after it."""

from dataclasses import asdict, dataclass, fields
from pathlib import Path

from pipeline import paths
from pipeline.errors import InputError
from pipeline.files import read_json, write_json


@dataclass(frozen=True)
class RunRecord:
    """The run that trained the model, both logged models and the predictor's version."""

    run_id: str
    experiment_id: str
    model_uri: str
    predictor_uri: str
    registered_model: str
    model_version: str

    def write(self, path: Path = paths.RUN) -> None:
        """Write the record as JSON, atomically."""
        write_json(asdict(self), path)

    @classmethod
    def read(cls, path: Path = paths.RUN) -> "RunRecord":
        """Read the record, or fail naming the file and the first missing entry."""
        found = read_json(path)
        for field in fields(cls):
            if not isinstance(found.get(field.name), str) or not found[field.name]:
                raise InputError(f"{path}: has no {field.name}; run `dvc repro -f train`")
        return cls(**{field.name: found[field.name] for field in fields(cls)})
