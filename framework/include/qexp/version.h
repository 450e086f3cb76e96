#pragma once

namespace qexp {

const char* version_string();         // qexp's own version, e.g. "0.1.0"
const char* torch_version_string();   // the libtorch this build compiled against
const char* onednn_version_string();  // the oneDNN loaded at run time, e.g. "2.6.3"

}  // namespace qexp
