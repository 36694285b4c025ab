"""Generated CRI stubs (runtime.v1 and runtime.v1alpha2); regenerate with generate.sh."""
