"""The doubler's logic, in-process: no daemon, no other process."""

import pytest
from doubler import run

from doradus import UnknownOutputError
from doradus.testing import MockNode


def test_doubles_every_number():
    inputs = [("numbers", [1, 2, 3]), ("numbers", [5], {"seq": 2})]
    node = MockNode(inputs, outputs=["doubled", "done"])
    run(node)
    assert [v.to_pylist() for v in node.outputs["doubled"]] == [[2, 4, 6], [10]]
    assert node.sent[1].metadata["seq"] == 2
    assert node.outputs["done"][0].to_pylist() == [True]


def test_an_undeclared_output_is_refused():
    node = MockNode([("numbers", [1])], outputs=["doubled"])  # `done` is not declared
    with pytest.raises(UnknownOutputError):
        run(node)
