# The chunked body and the events of a Kubernetes watch stream tandem-ca reads.
tandem_fuzz_target(fuzz_kube_watch_stream SOURCES fuzz_kube_watch_stream.cc LIBS tandem_kube)
