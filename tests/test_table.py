import numpy as np
import pytest

from emsh.errors import UsageError
from emsh.table import Table


def test_columns_keep_order_and_types():
    t = Table({"rlnAngleRot": [10.0, 20.5], "rlnClassNumber": [1, 2], "rlnImageName": ["1@a", "2@a"]})
    assert t.columns == ["rlnAngleRot", "rlnClassNumber", "rlnImageName"]
    assert t["rlnAngleRot"].dtype == np.float64
    assert t["rlnClassNumber"].dtype == np.int64
    assert t["rlnImageName"].dtype.kind == "U"
    assert len(t) == 2


def test_length_mismatch_is_refused():
    t = Table({"a": [1, 2, 3]})
    with pytest.raises(UsageError, match="2 rows, the table has 3"):
        t["b"] = [1.0, 2.0]


def test_missing_column_names_the_columns():
    t = Table({"a": [1]})
    with pytest.raises(UsageError, match="columns are a"):
        t["b"]


def test_take_rows_and_equality():
    t = Table({"a": [1, 2, 3], "b": [0.5, 1.5, 2.5]})
    sub = t.take(t["a"] > 1)
    assert sub == Table({"a": [2, 3], "b": [1.5, 2.5]})
    assert list(sub.rows()) == [{"a": 2, "b": 1.5}, {"a": 3, "b": 2.5}]
    c = t.copy()
    c["a"][0] = 99
    assert t["a"][0] == 1
