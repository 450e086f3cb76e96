# Third-party packages qexp compiles against. The installed CMake package includes this file too,
# so an out-of-tree plugin links exactly the libraries the host was built with.
find_package(Torch REQUIRED)
find_package(spdlog REQUIRED)
find_package(Threads REQUIRED)
find_package(yaml-cpp REQUIRED)
find_package(nlohmann_json REQUIRED)
