"""Helpers of the test suite: tiny model testers, the shared model checks, the local Hub server, process launches
and training data writers."""
