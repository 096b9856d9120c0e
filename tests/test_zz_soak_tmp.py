import sys
sys.path.insert(0, "/work/wt-graphsf/tests")
from hypothesis import given, settings, HealthCheck
import test_conformance as C
from test_conformance import *  # noqa

@settings(deadline=None, database=None, max_examples=40, suppress_health_check=list(HealthCheck))
@given(drawn=C.drawn_graphs().filter(lambda d: d.policy != "retry"))
def test_soak(drawn, step_functions):
    C.test_a_drawn_graph_ends_the_same_on_step_functions.hypothesis.inner_test(drawn, step_functions)
