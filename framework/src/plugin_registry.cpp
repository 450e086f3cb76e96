#include "qexp/plugin_registry.h"

#include <dlfcn.h>
#include <elf.h>
#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <boost/dll/shared_library.hpp>
#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "qexp/errors.h"
#include "qexp/input_file.h"
#include "qexp/suggest.h"
#include "qexp/text.h"

namespace qexp {
namespace fs = std::filesystem;

namespace {

// Plugins stay loaded until the process ends: quantizers and packed layers they created hold
// vtables inside them, and unloading at static-destruction time would race their destructors.
std::vector<boost::dll::shared_library>& loaded_libraries() {
  static auto* libraries = new std::vector<boost::dll::shared_library>();
  return *libraries;
}

fs::path libqexp_folder() {
  Dl_info info{};
  if (dladdr(reinterpret_cast<const void*>(&libqexp_folder), &info) && info.dli_fname)
    return fs::path(info.dli_fname).parent_path();
  return {};
}

// What dlopen would trip over, read from the file first: "" for a complete 64-bit ELF file (or an
// ELF of another class, which dlopen itself refuses cleanly). A file shorter than its headers say
// (a build interrupted while writing it, a copy cut short) would be mapped past its end by dlopen
// and kill the process with SIGBUS on first touch.
struct elf_check {
  bool elf = false;      // starts with the ELF magic
  std::string problem;  // why it is incomplete; empty when complete
};

elf_check check_elf(const fs::path& file) {
  elf_check out;
  const int fd = open_regular_file(file, "");
  struct stat st {};
  ::fstat(fd, &st);
  const auto size = static_cast<std::uint64_t>(st.st_size);
  auto read_at = [fd](void* into, std::size_t n, std::uint64_t offset) {
    return ::pread(fd, into, n, static_cast<off_t>(offset)) == static_cast<ssize_t>(n);
  };
  Elf64_Ehdr header{};
  const bool magic = read_at(header.e_ident, SELFMAG, 0) && std::memcmp(header.e_ident, ELFMAG, SELFMAG) == 0;
  if (!magic) {
    ::close(fd);
    return out;
  }
  out.elf = true;
  auto past_end = [size](const char* what, std::uint64_t offset, std::uint64_t count, std::uint64_t entry) -> std::string {
    if (count != 0 && entry > (UINT64_MAX - offset) / count)
      return std::string(what) + " at byte " + std::to_string(offset) + " overflow";
    const std::uint64_t end = offset + count * entry;
    if (end <= size) return "";
    return std::string(what) + " end at byte " + std::to_string(end) + ", the file has " + std::to_string(size) + " bytes";
  };
  if (size < sizeof header || !read_at(&header, sizeof header, 0)) {
    out.problem = "the ELF header ends at byte " + std::to_string(sizeof header) + ", the file has " +
                  std::to_string(size) + " bytes";
  } else if (header.e_ident[EI_CLASS] == ELFCLASS64) {
    out.problem = past_end("the program headers", header.e_phoff, header.e_phnum, header.e_phentsize);
    if (out.problem.empty() && header.e_shoff != 0)
      out.problem = past_end("the section headers", header.e_shoff, header.e_shnum, header.e_shentsize);
    for (std::uint64_t i = 0; out.problem.empty() && i < header.e_phnum && header.e_phentsize >= sizeof(Elf64_Phdr); ++i) {
      Elf64_Phdr segment{};
      if (!read_at(&segment, sizeof segment, header.e_phoff + i * header.e_phentsize)) break;
      if (segment.p_type == PT_LOAD)
        out.problem = past_end(("loadable segment " + std::to_string(i)).c_str(), segment.p_offset, 1, segment.p_filesz);
    }
  }
  ::close(fd);
  return out;
}

std::string plugin_label(const fs::path& file) { return "plugin " + file.string(); }

void check_info(const fs::path& file, const qexp_plugin_info* info) {
  const std::string who = plugin_label(file);
  if (!info) throw plugin_error(who + ": qexp_plugin_entry returned null");
  // The API version is read before any other field: a different version may lay them out differently.
  if (info->api_version != QEXP_PLUGIN_API_VERSION)
    throw plugin_error(who + ": incompatible plugin API version (plugin: " +
                       std::to_string(info->api_version) +
                       ", host: " + std::to_string(QEXP_PLUGIN_API_VERSION) + "); rebuild it against this qexp");
  if (info->torch_major != TORCH_VERSION_MAJOR || info->torch_minor != TORCH_VERSION_MINOR)
    throw plugin_error(who + ": built against libtorch " + std::to_string(info->torch_major) + "." +
                       std::to_string(info->torch_minor) + ", host uses " +
                       std::to_string(TORCH_VERSION_MAJOR) + "." + std::to_string(TORCH_VERSION_MINOR) +
                       "; rebuild it against this qexp");
  if (info->cxx11_abi != QEXP_CXX11_ABI)
    throw plugin_error(who + ": built with _GLIBCXX_USE_CXX11_ABI=" + std::to_string(info->cxx11_abi) +
                       ", host uses " + std::to_string(QEXP_CXX11_ABI) + "; rebuild it against this qexp");
  if (!info->id || !info->version || !info->summary || !info->supported)
    throw plugin_error(who + ": qexp_plugin_info has a null id, version, summary or supported");
  if (!info->create_linear && !info->create_table)
    throw plugin_error(who + ": qexp_plugin_info has neither create_linear nor create_table");
  static const std::regex kebab("[a-z0-9]+(-[a-z0-9]+)*");
  if (!std::regex_match(info->id, kebab))
    throw plugin_error(who + ": plugin id '" + info->id + "' is not kebab-case (e.g. 'dynamic-int8')");
  if (info->n_options > 0 && !info->options)
    throw plugin_error(who + ": declares " + std::to_string(info->n_options) + " options but no option table");
  std::set<std::string> names;
  for (std::size_t i = 0; i < info->n_options; ++i) {
    const option_spec& o = info->options[i];
    if (!o.name || !o.default_value || !o.help)
      throw plugin_error(who + ": option " + std::to_string(i) + " has a null name, default or help");
    if (!names.insert(o.name).second)
      throw plugin_error(who + ": option '" + std::string(o.name) + "' is declared twice");
    if (o.type == option_type::choice && (!o.choices || !*o.choices))
      throw plugin_error(who + ": choice option '" + std::string(o.name) + "' lists no choices");
    const bool numeric = o.type == option_type::integer || o.type == option_type::number;
    if ((o.min || o.max) && !numeric)
      throw plugin_error(who + ": option '" + std::string(o.name) + "' has a range but is not an integer or number");
    for (const char* bound : {o.min, o.max}) {
      char* end = nullptr;
      if (bound && (!*bound || (std::strtod(bound, &end), *end != '\0')))
        throw plugin_error(who + ": option '" + std::string(o.name) + "' has a bound '" + bound +
                           "' that is not a number");
    }
  }
  if (info->variants)
    for (const char* const* v = info->variants; *v; ++v) parse_option_list(*v, who + ": variant");
}


// Returns the canonical text of `value` for option `o`, or throws naming what was expected: a
// config_error (exit 3) for a value the user wrote, as for any other config key; a plugin_error
// (exit 5) for the plugin's own default, which is the plugin's mistake.
std::string canonical_option_value(const option_spec& o, const std::string& value, bool is_default,
                                   const std::string& who, const fs::path& base_dir) {
  auto fail = [&](const std::string& expected, const std::string& suggestion = "") -> std::string {
    const std::string message = who + "option '" + o.name + "' expects " + expected + ", got '" + value + "'" +
                                (is_default ? " (its declared default)" : suggestion);
    if (is_default) throw plugin_error(message);
    throw config_error(message);
  };
  switch (o.type) {
    case option_type::boolean:
    case option_type::integer:
    case option_type::number:
    case option_type::choice: {
      const schema_node node = option_schema(o);
      const std::string unmet = unmet_expectation(node, value);
      if (!unmet.empty()) return fail(unmet, o.type == option_type::choice ? did_you_mean(value, node.choices) : "");
      return o.type == option_type::integer ? std::to_string(std::strtoll(value.c_str(), nullptr, 10)) : value;
    }
    case option_type::string:
      return value;
    case option_type::path: {
      if (value.empty()) return value;  // not set
      fs::path p(value);
      if (p.is_relative()) p = (base_dir.empty() ? fs::current_path() : base_dir) / p;
      std::error_code ec;
      if (!fs::exists(p, ec)) return fail("an existing file or folder (" + p.lexically_normal().string() + " does not exist)");
      return p.lexically_normal().string();
    }
  }
  return fail("a known option type");
}

template <typename Quantizer, typename Factory>
std::unique_ptr<Quantizer> create_with(const plugin_record& record, Factory factory, const option_values& values,
                                       const std::string& who) {
  if (!record.supported) throw plugin_error(who + ": cannot run on this CPU: " + record.unsupported_reason);
  std::string error;
  Quantizer* quantizer = nullptr;
  try {
    quantizer = factory(values, &error);
  } catch (const std::exception& e) {
    throw plugin_error(who + ": factory threw: " + error_message(e));
  } catch (...) {
    throw plugin_error(who + ": factory threw something that is not a std::exception");
  }
  if (!quantizer) throw plugin_error(who + ": factory failed: " + (error.empty() ? "no reason given" : error));
  return std::unique_ptr<Quantizer>(quantizer);
}

}  // namespace

std::vector<std::string> option_choices(const option_spec& spec) {
  std::vector<std::string> out;
  std::stringstream s(spec.choices ? spec.choices : "");
  std::string c;
  while (std::getline(s, c, '|')) out.push_back(c);
  return out;
}

schema_node option_schema(const option_spec& o) {
  static const std::map<option_type, value_kind> kinds = {
      {option_type::boolean, value_kind::boolean}, {option_type::integer, value_kind::integer},
      {option_type::number, value_kind::number},   {option_type::string, value_kind::string},
      {option_type::choice, value_kind::choice},   {option_type::path, value_kind::path}};
  schema_node node = o.type == option_type::choice ? schema_node::choice_of(option_choices(o), o.help)
                                                   : schema_node::of(kinds.at(o.type), o.help);
  if (o.type == option_type::integer) node.wide_integer();  // option_values::get_int reads 64 bits
  if (o.min) node.at_least(std::strtod(o.min, nullptr));
  if (o.max) node.at_most(std::strtod(o.max, nullptr));
  node.with_default(YAML::Node(std::string(o.default_value)));
  return node;
}

schema_node options_schema(const qexp_plugin_info& info) {
  std::vector<std::pair<std::string, schema_node>> fields;
  for (std::size_t i = 0; i < info.n_options; ++i) fields.emplace_back(info.options[i].name, option_schema(info.options[i]));
  return schema_node::map_of(std::move(fields), info.summary);
}

std::map<std::string, std::string> parse_option_list(const std::string& text, const std::string& who) {
  std::map<std::string, std::string> out;
  std::stringstream s(text);
  std::string part;
  while (std::getline(s, part, ',')) {
    if (part.empty()) continue;
    const auto eq = part.find('=');
    if (eq == std::string::npos || eq == 0)
      throw plugin_error(who + " '" + text + "': expected key=value, got '" + part + "'");
    out[part.substr(0, eq)] = part.substr(eq + 1);
  }
  return out;
}

bool plugin_record::handles(site_kind kind) const {
  return kind == site_kind::linear ? info->create_linear != nullptr : info->create_table != nullptr;
}

const char* to_string(site_kind kind) { return kind == site_kind::linear ? "linear" : "table"; }

const char* to_string(option_type type) {
  switch (type) {
    case option_type::boolean: return "bool";
    case option_type::integer: return "int";
    case option_type::number: return "number";
    case option_type::string: return "string";
    case option_type::choice: return "choice";
    case option_type::path: return "path";
  }
  return "unknown";
}

std::vector<fs::path> plugin_registry::search_path(const std::vector<fs::path>& extra_paths) {
  std::vector<fs::path> path(extra_paths.begin(), extra_paths.end());
  for (const auto& p : split_path_list(std::getenv("QEXP_PLUGIN_PATH"))) path.emplace_back(p);
  const fs::path lib = libqexp_folder();
  if (!lib.empty()) {
    for (const fs::path& candidate : {lib / "qexp" / "plugins", lib.parent_path() / "plugins" / "lib"}) {
      std::error_code ec;
      if (fs::is_directory(candidate, ec)) {
        path.push_back(candidate);
        break;
      }
    }
  }
  return path;
}

plugin_registry plugin_registry::discover(const std::vector<fs::path>& extra_paths) {
  plugin_registry registry;
  std::set<fs::path> seen;
  for (const auto& entry : search_path(extra_paths)) {
    std::error_code ec;
    std::vector<fs::path> files;
    if (fs::is_directory(entry, ec)) {
      for (const auto& f : fs::directory_iterator(entry, ec))
        if (f.path().extension() == ".so" && !fs::is_directory(f.path(), ec)) files.push_back(f.path());
      std::sort(files.begin(), files.end());
    } else if (fs::exists(entry, ec)) {
      files.push_back(entry);
    } else if (std::find(extra_paths.begin(), extra_paths.end(), entry) != extra_paths.end()) {
      throw plugin_error("plugin path " + entry.string() + ": no such file or folder");
    }
    for (const auto& f : files) {
      const fs::path canonical = fs::weakly_canonical(f, ec);
      if (!seen.insert(canonical).second) continue;  // the same file reached twice on the path
      // A library cut short (a build still writing it) is skipped, not fatal: the other plugins
      // still work. Anything else wrong with a file is an error, as before.
      if (regular_file_problem(canonical).empty()) {
        const elf_check elf = check_elf(canonical);
        if (elf.elf && !elf.problem.empty()) {
          spdlog::warn("{}: skipped: truncated shared library ({})", plugin_label(canonical), elf.problem);
          continue;
        }
      }
      registry.load(canonical);
    }
  }
  return registry;
}

void plugin_registry::load(const fs::path& file) {
  const std::string who = plugin_label(file);
  if (const auto problem = regular_file_problem(file); !problem.empty()) throw plugin_error(who + ": " + problem);
  // dlopen on a text file gives an obscure "invalid ELF header"; say what is wrong in our words.
  const elf_check elf = check_elf(file);
  if (!elf.elf) throw plugin_error(who + ": not a shared library (no ELF header)");
  if (!elf.problem.empty()) throw plugin_error(who + ": truncated shared library (" + elf.problem + ")");
  boost::dll::shared_library library;
  try {
    library.load(boost::dll::fs::path(file.string()), boost::dll::load_mode::rtld_now);
  } catch (const std::exception& e) {
    const char* why = dlerror();
    throw plugin_error(who + ": cannot be loaded as a shared library (" + (why ? why : e.what()) + ")");
  }
  if (!library.has(QEXP_PLUGIN_ENTRY_SYMBOL))
    throw plugin_error(who + ": no '" QEXP_PLUGIN_ENTRY_SYMBOL "' symbol; is it a qexp plugin? (define it with QEXP_PLUGIN)");
  auto entry = library.get<const qexp_plugin_info*()>(QEXP_PLUGIN_ENTRY_SYMBOL);
  const qexp_plugin_info* info = entry();
  check_info(file, info);
  for (const auto& existing : plugins_)
    if (std::string(existing.info->id) == info->id)
      throw plugin_error(who + ": plugin id '" + info->id + "' is already provided by " + existing.file.string() +
                         "; remove one of them from the plugin path");
  plugin_record record;
  record.file = file;
  record.info = info;
  const char* reason = nullptr;
  record.supported = info->supported(&reason) != 0;
  if (!record.supported) record.unsupported_reason = reason ? reason : "no reason given";
  plugins_.push_back(std::move(record));
  loaded_libraries().push_back(std::move(library));
}

std::vector<std::string> plugin_registry::ids() const {
  std::vector<std::string> out;
  for (const auto& p : plugins_) out.emplace_back(p.info->id);
  return out;
}

const plugin_record& plugin_registry::find(const std::string& id) const {
  for (const auto& p : plugins_)
    if (id == p.info->id) return p;
  std::string known;
  for (const auto& i : ids()) known += (known.empty() ? "" : ", ") + i;
  throw plugin_error("unknown plugin '" + id + "'" + did_you_mean(id, ids()) + " (found: " +
                     (known.empty() ? "none" : known) + "; search path set by --plugin-path or QEXP_PLUGIN_PATH)");
}

option_values plugin_registry::resolve_options(const std::string& id,
                                               const std::map<std::string, std::string>& given,
                                               const std::string& where, const fs::path& base_dir) const {
  const plugin_record& record = find(id);
  const std::string who = (where.empty() ? "" : where + ": ") + "plugin '" + id + "': ";
  std::vector<std::string> names;
  for (std::size_t i = 0; i < record.info->n_options; ++i) names.emplace_back(record.info->options[i].name);
  for (const auto& [key, value] : given)
    if (std::find(names.begin(), names.end(), key) == names.end())
      throw config_error(who + "unknown option '" + key + "'" + did_you_mean(key, names) +
                         (names.empty() ? " (it takes no options)" : ""));
  option_values values;
  for (std::size_t i = 0; i < record.info->n_options; ++i) {
    const option_spec& o = record.info->options[i];
    auto it = given.find(o.name);
    values.values[o.name] =
        it == given.end() ? canonical_option_value(o, o.default_value, true, who, base_dir)
                          : canonical_option_value(o, it->second, false, who, base_dir);
  }
  return values;
}

std::unique_ptr<linear_quantizer> plugin_registry::create_linear(const std::string& id,
                                                                 const std::map<std::string, std::string>& options,
                                                                 const std::string& where,
                                                                 const fs::path& base_dir) const {
  const plugin_record& record = find(id);
  const std::string who = (where.empty() ? "" : where + ": ") + "plugin '" + id + "' (" + record.file.string() + ")";
  if (!record.info->create_linear) throw plugin_error(who + ": quantizes no Linear layers (embedding tables only)");
  const option_values values = resolve_options(id, options, where, base_dir);
  return create_with<linear_quantizer>(record, record.info->create_linear, values, who);
}

std::unique_ptr<table_quantizer> plugin_registry::create_table(const std::string& id,
                                                               const std::map<std::string, std::string>& options,
                                                               const std::string& where,
                                                               const fs::path& base_dir) const {
  const plugin_record& record = find(id);
  const std::string who = (where.empty() ? "" : where + ": ") + "plugin '" + id + "' (" + record.file.string() + ")";
  if (!record.info->create_table) throw plugin_error(who + ": quantizes no embedding tables (Linear layers only)");
  const option_values values = resolve_options(id, options, where, base_dir);
  return create_with<table_quantizer>(record, record.info->create_table, values, who);
}

conformance_budget plugin_registry::budget(const std::string& id, const option_values& options) const {
  const plugin_record& record = find(id);
  conformance_budget out;
  if (record.info->budget) record.info->budget(options, &out);
  return out;
}

}  // namespace qexp
