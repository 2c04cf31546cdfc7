"""The plugin's own tests: the same conformance checks every built-in model passes."""

from animerec_itemknn import ItemKNN

from animerec_bench.testing import check_model


def test_itemknn_conforms():
    check_model(ItemKNN)


def test_itemknn_conforms_with_few_neighbours_and_no_support_filter():
    check_model(ItemKNN, k=2, min_support=1, shrinkage=0.0)
