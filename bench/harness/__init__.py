"""The overhead benchmark's parts: servers, load generators, meters, results and their tables."""
