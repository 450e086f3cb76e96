# Third-party packages qexp compiles against. The installed CMake package includes this file too,
# so an out-of-tree plugin links exactly the libraries the host was built with.
find_package(Torch REQUIRED)
find_package(spdlog REQUIRED)
find_package(Threads REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(nlohmann_json REQUIRED)
# ATen's at::parallel_for is a header template that runs in parallel only in code compiled with
# OpenMP (otherwise it calls the body once, serially), so qexp and every plugin compile with the
# OpenMP libtorch uses (GNU libgomp).
find_package(OpenMP REQUIRED)
