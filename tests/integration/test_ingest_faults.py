"""Ingestion of a source with malformed records, against the real PostgreSQL and S3: the
records are kept in rejected_rows with their raw text and the stream moves past them."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import text

from prodcat.config import Settings
from prodcat.data.ingest import ingest_next_batch
from prodcat.data.reset import reset_data
from prodcat.db import get_engine

pytestmark = pytest.mark.integration
SOURCE = (
    "sku,name,cat,picture\n"
    "1,Lampe de bureau,10,\n"
    "2,Chaise,10,extra,field\n"  # a field too many
    "3,Table basse,40,../../etc/passwd\n"  # an image name outside the image folder
    "4,Sac à main,40,\n"
    '5,"Robe rouge,10,\n'  # an open quote: swallows the rest of the file
    "6,Vase,40,\n"
)


@pytest.fixture
def shop(settings, tmp_path) -> Settings:
    (tmp_path / "images").mkdir()
    (tmp_path / "listings.csv").write_text(SOURCE, encoding="utf-8")
    (tmp_path / "shop.yaml").write_text(
        "name: faulty-shop\nfeatures_file: listings.csv\n"
        "columns: {id: sku, title: name, label: cat}\n"
        "image: {dir: images, column: picture}\n"
    )
    data = settings.data.model_copy(update={
        "raw_dir": tmp_path, "dataset": str(tmp_path / "shop.yaml"), "batch_size": 3,
        "eval_size": 0,
    })  # fmt: skip
    s = settings.model_copy(update={"data": data})
    reset_data(confirm=True, settings=s)
    return s


def test_malformed_rows_are_kept_with_their_raw_text_and_the_stream_moves_past(shop):
    first = ingest_next_batch("faulty-1", settings=shop)
    second = ingest_next_batch("faulty-2", settings=shop)
    assert (first.rows_read, first.rows_accepted, first.rows_rejected) == (3, 1, 2)
    assert (second.rows_read, second.rows_accepted, second.rows_rejected) == (2, 1, 1)
    assert ingest_next_batch("faulty-3", settings=shop).exhausted
    with get_engine(shop).connect() as conn:
        rejects = conn.execute(text(
            "select source_row, reason, detail, raw from rejected_rows order by source_row"
        )).all()  # fmt: skip
        products = conn.execute(text("select product_id from products order by 1")).scalars()
        assert list(products) == ["1", "4"]
    assert [(r.source_row, r.reason) for r in rejects] == [
        (1, "malformed_row"), (2, "bad_image_path"), (4, "malformed_row"),
    ]  # fmt: skip
    raw = rejects[0].raw if isinstance(rejects[0].raw, dict) else json.loads(rejects[0].raw)
    assert raw == {"line": "2,Chaise,10,extra,field\n"}
    assert "../../etc/passwd" in rejects[1].detail
