#include "qexp/config_schema.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <sstream>

#include "qexp/errors.h"
#include "qexp/input_file.h"
#include "qexp/suggest.h"
#include "qexp/text.h"

namespace qexp {
namespace fs = std::filesystem;

schema_node schema_node::map_of(std::vector<std::pair<std::string, schema_node>> fields, std::string help) {
  schema_node s;
  s.kind = value_kind::map;
  s.fields = std::move(fields);
  s.help = std::move(help);
  return s;
}

schema_node schema_node::list_of(schema_node element, std::string help) {
  schema_node s;
  s.kind = value_kind::list;
  s.element = std::make_shared<schema_node>(std::move(element));
  s.help = std::move(help);
  return s;
}

schema_node schema_node::of(value_kind kind, std::string help) {
  schema_node s;
  s.kind = kind;
  s.help = std::move(help);
  return s;
}

schema_node schema_node::choice_of(std::vector<std::string> choices, std::string help) {
  schema_node s;
  s.kind = value_kind::choice;
  s.choices = std::move(choices);
  s.help = std::move(help);
  return s;
}

schema_node& schema_node::with_default(const YAML::Node& value) {
  default_value = YAML::Clone(value);
  return *this;
}
schema_node& schema_node::is_required() {
  required = true;
  return *this;
}
schema_node& schema_node::existing() {
  must_exist = true;
  return *this;
}
schema_node& schema_node::at_least(double v) {
  min = v;
  return *this;
}
schema_node& schema_node::at_most(double v) {
  max = v;
  return *this;
}
schema_node& schema_node::non_empty() {
  min_items = 1;
  return *this;
}
schema_node& schema_node::as_folder_name() {
  folder_name = true;
  return *this;
}
schema_node& schema_node::wide_integer() {
  wide = true;
  return *this;
}

const schema_node* schema_node::field(const std::string& name) const {
  for (const auto& [key, node] : fields)
    if (key == name) return &node;
  return nullptr;
}

std::vector<fs::path> default_data_search_path(const fs::path& config_file) {
  std::vector<fs::path> out;
  if (const char* env = std::getenv("QEXP_DATA_PATH"); env && *env) {
    for (const auto& part : split_path_list(env)) out.emplace_back(part);
    return out;
  }
  std::error_code ec;
  std::vector<fs::path> candidates{fs::current_path(ec) / ".." / "shared" / "data"};
  if (!config_file.empty()) {
    // configs/x.yaml inside a checkout: the checkout's sibling ../shared.
    const fs::path folder = fs::absolute(config_file, ec).parent_path();
    candidates.push_back(folder / ".." / ".." / "shared" / "data");
    candidates.push_back(folder / ".." / "shared" / "data");
  }
  for (const auto& c : candidates)
    if (fs::is_directory(c, ec)) out.push_back(fs::weakly_canonical(c, ec));
  return out;
}

namespace {

std::string hex_byte(unsigned char b) {
  static const char* digits = "0123456789ABCDEF";
  return std::string("0x") + digits[b >> 4] + digits[b & 15];
}

std::string node_kind(const YAML::Node& n) {
  return n.IsMap() ? "a map" : n.IsSequence() ? "a list" : n.IsNull() ? "nothing" : "a scalar";
}

// Bounds on the values check_yaml_node walks. An alias may name the anchor it sits in
// (`a: &x [*x]`: yaml-cpp builds a cycle) or aliases may repeat aliases (a few lines that expand to
// billions of values); no config comes near either bound.
constexpr std::size_t max_yaml_depth = 64;
constexpr std::size_t max_yaml_values = 100000;

// What yaml-cpp lets through and the schema must not see: keys that are maps or lists, a key given
// twice in one map (yaml-cpp would keep the first and drop the second silently), text that is
// not UTF-8 or holds a NUL byte (it ends in results.json and file names), and aliases that nest
// or expand past the bounds above. `at(node)` says where a node is: "file:line:column" or "--set k=v".
template <typename Where>
void check_yaml_node(const YAML::Node& n, const std::string& key, const Where& at, std::size_t depth,
                     std::size_t& values) {
  auto key_text = [&key] { return key.empty() ? std::string() : " (key '" + key + "')"; };
  if (depth > max_yaml_depth)
    throw config_error(at(n) + ": values nested more than " + std::to_string(max_yaml_depth) + " levels deep (key '" +
                       one_line(key, 40) + "'); expected a config nested less deeply (is an alias inside its own anchor?)");
  if (++values > max_yaml_values)
    throw config_error(at(n) + ": more than " + std::to_string(max_yaml_values) + " values" + key_text() +
                       "; expected a config of fewer values (do aliases repeat aliases?)");
  if (n.IsScalar()) {
    const std::string& text = n.Scalar();
    const auto nul = text.find('\0');
    if (nul != std::string::npos)
      throw config_error(at(n) + ": NUL byte at byte " + std::to_string(nul) + " of the value" + key_text() +
                         "; expected text without NUL");
    const auto bad = invalid_utf8_offset(text);
    if (bad != std::string::npos)
      throw config_error(at(n) + ": byte " + std::to_string(bad) + " of the value" + key_text() + " is " +
                         hex_byte(static_cast<unsigned char>(text[bad])) +
                         ", not UTF-8; expected UTF-8 text (save the file as UTF-8)");
  } else if (n.IsSequence()) {
    for (std::size_t i = 0; i < n.size(); ++i)
      check_yaml_node(n[i], key.empty() ? std::to_string(i) : key + "." + std::to_string(i), at, depth + 1, values);
  } else if (n.IsMap()) {
    std::map<std::string, YAML::Mark> seen;
    for (const auto& entry : n) {
      if (!entry.first.IsScalar())
        throw config_error(at(entry.first) + ": a key" + (key.empty() ? "" : " in '" + key + "'") + " is " +
                           node_kind(entry.first) + "; expected a plain name");
      check_yaml_node(entry.first, key, at, depth + 1, values);
      const std::string name = entry.first.Scalar();
      const std::string child = key.empty() ? name : key + "." + name;
      const auto [first, inserted] = seen.emplace(name, entry.first.Mark());
      if (!inserted)
        throw config_error(at(entry.first) + ": duplicate key '" + child + "' (first at line " +
                           std::to_string(first->second.line + 1) + "); give each key once");
      check_yaml_node(entry.second, child, at, depth + 1, values);
    }
  }
}

}  // namespace

YAML::Node load_yaml_file(const fs::path& file) {
  std::string text;
  try {
    text = read_regular_file(file, "config file");
  } catch (const input_error& e) {
    throw config_error(e.what());  // the config is not an input file: exit 3
  }
  // yaml-cpp stops reading at a NUL byte as if the file ended there: the rest would be ignored.
  if (const auto nul = text.find('\0'); nul != std::string::npos) {
    const auto line_start = text.rfind('\n', nul);
    const auto line = 1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(nul), '\n');
    const auto column = nul - (line_start == std::string::npos ? 0 : line_start + 1) + 1;
    throw config_error(file.string() + ":" + std::to_string(line) + ":" + std::to_string(column) +
                       ": NUL byte at byte offset " + std::to_string(nul) + "; expected YAML text");
  }
  YAML::Node document;
  try {
    document = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw config_error(file.string() + ":" + std::to_string(e.mark.line + 1) + ":" +
                       std::to_string(e.mark.column + 1) + ": YAML syntax error: " + e.msg);
  }
  std::size_t values = 0;
  check_yaml_node(
      document, "",
      [&file](const YAML::Node& n) {
        const YAML::Mark mark = n.Mark();
        return mark.is_null() ? file.string()
                              : file.string() + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
      },
      0, values);
  return document;
}

namespace {

std::string number_text(double v) {
  std::ostringstream o;
  o << v;
  return o.str();
}

// " in [1, 8]", " >= 0" (`at_least`, `at_most`: the operators, ">=" in messages, "≥" in docs), or "".
std::string range_text(const schema_node& s, const char* at_least = " >= ", const char* at_most = " <= ") {
  if (s.min && s.max) return " in [" + number_text(*s.min) + ", " + number_text(*s.max) + "]";
  if (s.min) return at_least + number_text(*s.min);
  if (s.max) return at_most + number_text(*s.max);
  return "";
}

}  // namespace

std::string expected_value(const schema_node& s) {
  const std::string range = range_text(s);
  switch (s.kind) {
    case value_kind::integer: return "an integer" + range;
    case value_kind::number: return "a number" + range;
    case value_kind::boolean: return "true or false";
    case value_kind::choice: return "one of " + join(s.choices, ", ");
    case value_kind::path:
    case value_kind::data_path: return "a path";
    default: return "a string";
  }
}

std::string unmet_expectation(const schema_node& s, const std::string& text) {
  const auto in_range = [&](double v) { return !(s.min && v < *s.min) && !(s.max && v > *s.max); };
  switch (s.kind) {
    case value_kind::boolean:
      return text == "true" || text == "false" ? "" : expected_value(s);
    case value_kind::integer: {
      errno = 0;
      char* end = nullptr;
      const long long v = std::strtoll(text.c_str(), &end, 10);
      if (text.empty() || *end != '\0' || errno == ERANGE) return expected_value(s);
      if (!s.wide && (v < INT_MIN || v > INT_MAX))
        return expected_value(s) + " (a 32-bit integer: at most " + std::to_string(INT_MAX) + ")";
      return in_range(static_cast<double>(v)) ? "" : expected_value(s);
    }
    case value_kind::number: {
      errno = 0;
      char* end = nullptr;
      const double v = std::strtod(text.c_str(), &end);
      if (text.empty() || *end != '\0' || errno == ERANGE || !std::isfinite(v)) return expected_value(s);
      return in_range(v) ? "" : expected_value(s);
    }
    case value_kind::choice:
      return std::find(s.choices.begin(), s.choices.end(), text) != s.choices.end() ? "" : expected_value(s);
    default:
      return "";
  }
}

namespace {

// The --set that wrote `key`, a parent of it, or (for keys it created) a child of it.
std::string override_location(const config_source& source, const std::string& key) {
  for (const auto& [path, text] : source.overrides)
    if (key == path || key.rfind(path + ".", 0) == 0) return "--set " + text;
  if (auto it = source.created_by_overrides.find(key); it != source.created_by_overrides.end())
    return "--set " + it->second;
  return "";
}

std::string mark_location(const config_source& source, const YAML::Node& node) {
  const std::string file = source.file.empty() ? "<config>" : source.file.string();
  if (!node) return file;
  const YAML::Mark mark = node.Mark();
  if (mark.is_null()) return file;
  return file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

bool is_index(const std::string& part) {
  return !part.empty() && part.find_first_not_of("0123456789") == std::string::npos;
}

// List index `part` (all digits); SIZE_MAX when it is too large for any list.
std::size_t index_of(const std::string& part) {
  errno = 0;
  const unsigned long long v = std::strtoull(part.c_str(), nullptr, 10);
  return errno == ERANGE || v > SIZE_MAX ? SIZE_MAX : static_cast<std::size_t>(v);
}

// "a.b.0" -> a, b, 0; empty parts are kept ("a." -> a, "") so that they can be refused.
std::vector<std::string> split_key_path(const std::string& key) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  for (std::size_t dot; (dot = key.find('.', start)) != std::string::npos; start = dot + 1)
    parts.push_back(key.substr(start, dot - start));
  parts.push_back(key.substr(start));
  return parts;
}

class resolver {
 public:
  explicit resolver(const config_source& source) : source_(source) {}

  YAML::Node resolve(const YAML::Node& in, const schema_node& s, const std::string& key, const YAML::Node& parent) {
    switch (s.kind) {
      case value_kind::map: return resolve_map(in, s, key, parent);
      case value_kind::list: return resolve_list(in, s, key, parent);
      case value_kind::scalar_map: return resolve_scalar_map(in, key, parent);
      case value_kind::free_map:
        if (!in.IsMap()) fail("expected a map", key, in, ", got " + describe(in));
        return YAML::Clone(in);
      default: return resolve_scalar(in, s, key, parent);
    }
  }

 private:
  // "configs/x.yaml:4:1" or "--set a.b=c" when the key (or a parent) came from the command line.
  std::string where(const std::string& key, const YAML::Node& node) const {
    const std::string set = override_location(source_, key);
    if (!set.empty()) return set;
    if (in_default_) return (source_.file.empty() ? std::string("<config>") : source_.file.string()) + " (default value)";
    return mark_location(source_, node);
  }

  [[noreturn]] void fail(const std::string& what, const std::string& key, const YAML::Node& node,
                         const std::string& tail = "") const {
    throw config_error(what + " at " + where(key, node) + (key.empty() ? "" : " (key '" + key + "')") + tail);
  }

  static bool has_required_field(const schema_node& s) {
    if (s.kind != value_kind::map) return false;
    for (const auto& [name, f] : s.fields)
      if (f.required) return true;
    return false;
  }

  static std::string join(const std::string& key, const std::string& child) {
    return key.empty() ? child : key + "." + child;
  }

  YAML::Node resolve_map(const YAML::Node& in, const schema_node& s, const std::string& key, const YAML::Node& parent) {
    YAML::Node out(YAML::NodeType::Map);
    if (in && !in.IsNull() && !in.IsMap())
      fail("expected a map", key, in, ", got " + describe(in));
    std::vector<std::string> names;
    for (const auto& [name, child] : s.fields) names.push_back(name);
    if (in && in.IsMap()) {
      for (const auto& entry : in) {
        const std::string name = entry.first.as<std::string>();
        if (!s.field(name)) {
          std::string hint = did_you_mean(name, names);
          if (hint.empty() && !names.empty()) hint = " (known: " + qexp::join(names, ", ") + ")";  // nothing close
          throw config_error("unknown key '" + name + "' at " + where(join(key, name), entry.first) + hint);
        }
      }
    }
    const YAML::Node& anchor = (in && in.IsMap()) ? in : parent;
    for (const auto& [name, child] : s.fields) {
      const std::string child_key = join(key, name);
      YAML::Node value = (in && in.IsMap()) ? in[name] : YAML::Node();
      if (value && !value.IsNull()) {
        out[name] = resolve(value, child, child_key, anchor);
      } else if (child.required || has_required_field(child)) {
        fail("missing required key '" + name + "'", child_key, anchor,
             child.help.empty() ? "" : " (" + child.help + ")");
      } else if (child.default_value) {
        const bool outer = in_default_;
        in_default_ = true;
        out[name] = resolve(*child.default_value, child, child_key, anchor);
        in_default_ = outer;
      } else if (child.kind == value_kind::map) {
        out[name] = resolve(YAML::Node(), child, child_key, anchor);
      }
    }
    return out;
  }

  YAML::Node resolve_list(const YAML::Node& in, const schema_node& s, const std::string& key, const YAML::Node& parent) {
    YAML::Node out(YAML::NodeType::Sequence);
    if (in.IsScalar() && s.element->kind != value_kind::map && s.element->kind != value_kind::list) {
      out.push_back(resolve(in, *s.element, join(key, "0"), parent));
    } else if (in.IsSequence()) {
      for (std::size_t i = 0; i < in.size(); ++i) out.push_back(resolve(in[i], *s.element, join(key, std::to_string(i)), in));
    } else {
      fail("expected a list", key, in, ", got " + describe(in));
    }
    if (out.size() < s.min_items) fail("expected at least " + std::to_string(s.min_items) + " item(s)", key, in);
    return out;
  }

  YAML::Node resolve_scalar_map(const YAML::Node& in, const std::string& key, const YAML::Node&) {
    YAML::Node out(YAML::NodeType::Map);
    if (!in.IsMap()) fail("expected a map of option: value", key, in, ", got " + describe(in));
    for (const auto& entry : in) {
      const std::string name = entry.first.as<std::string>();
      if (!entry.second.IsScalar())
        fail("expected a single value for option '" + name + "'", join(key, name), entry.second,
             ", got " + describe(entry.second));
      out[name] = entry.second.as<std::string>();
    }
    return out;
  }

  static std::string describe(const YAML::Node& n) {
    if (n.IsMap()) return "a map";
    if (n.IsSequence()) return "a list";
    if (n.IsNull()) return "nothing";
    return "'" + n.as<std::string>() + "'";
  }

  YAML::Node resolve_scalar(const YAML::Node& in, const schema_node& s, const std::string& key, const YAML::Node&) {
    if (!in.IsScalar()) fail("expected " + expected_value(s), key, in, ", got " + describe(in));
    const std::string text = in.as<std::string>();
    switch (s.kind) {
      case value_kind::string:
        if (s.folder_name && (text.empty() || text == "." || text == ".." || text.find('/') != std::string::npos))
          fail("expected a plain name usable as one folder name (no '/', not empty, '.' or '..')", key, in,
               ", got '" + text + "'");
        return YAML::Node(text);
      case value_kind::boolean:
      case value_kind::integer:
      case value_kind::number:
      case value_kind::choice: {
        const std::string unmet = unmet_expectation(s, text);
        if (!unmet.empty())
          fail("expected " + unmet, key, in,
               ", got '" + text + "'" + (s.kind == value_kind::choice ? did_you_mean(text, s.choices) : ""));
        if (s.kind == value_kind::boolean) return YAML::Node(text == "true");
        if (s.kind == value_kind::integer) return YAML::Node(std::strtoll(text.c_str(), nullptr, 10));
        if (s.kind == value_kind::number) return YAML::Node(std::strtod(text.c_str(), nullptr));
        return YAML::Node(text);
      }
      case value_kind::path:
      case value_kind::data_path:
        return YAML::Node(resolve_path(text, s, key, in).string());
      default:
        fail("unsupported schema kind", key, in);
    }
  }

  fs::path resolve_path(const std::string& text, const schema_node& s, const std::string& key, const YAML::Node& in) {
    std::error_code ec;
    fs::path p(text);
    if (p.is_absolute()) {
      if (s.must_exist && !fs::exists(p, ec)) fail("path " + text + " does not exist", key, in);
      return p.lexically_normal();
    }
    // Values from --set are relative to where the user typed them; file values to the file.
    const bool from_command_line = where(key, in).rfind("--set ", 0) == 0;
    const fs::path base = from_command_line || source_.file.empty() ? fs::current_path(ec)
                                                                    : fs::absolute(source_.file, ec).parent_path();
    const fs::path local = (base / p).lexically_normal();
    if (fs::exists(local, ec) || (s.kind == value_kind::path && !s.must_exist)) return local;
    std::string looked = local.string();
    if (s.kind == value_kind::data_path) {
      for (const auto& folder : source_.data_search_path) {
        const fs::path candidate = (fs::absolute(folder, ec) / p).lexically_normal();
        if (fs::exists(candidate, ec)) return candidate;
        looked += ", " + candidate.string();
      }
      if (source_.data_search_path.empty()) looked += " (data search path empty: set QEXP_DATA_PATH)";
    }
    if (s.must_exist) fail("path '" + text + "' not found (looked in " + looked + ")", key, in);
    return local;
  }

  const config_source& source_;
  bool in_default_ = false;  // resolving a schema default: no line of the file to point at
};

}  // namespace

void apply_overrides(YAML::Node& document, const std::vector<std::string>& assignments, config_source& source) {
  for (const auto& assignment : assignments) {
    const auto eq = assignment.find('=');
    if (eq == std::string::npos || eq == 0)
      throw config_error("--set " + assignment + ": expected key.path=value");
    const std::string key = assignment.substr(0, eq);
    // The key's parts become keys of the document: the rules for text in the file hold for them too.
    if (const auto nul = key.find('\0'); nul != std::string::npos) {
      std::string shown;  // a NUL would end the message
      for (const char c : assignment) shown += c == '\0' ? std::string("\\0") : std::string(1, c);
      throw config_error("--set " + shown + ": NUL byte at byte " + std::to_string(nul) +
                         " of the key; expected text without NUL");
    }
    if (const auto bad = invalid_utf8_offset(key); bad != std::string::npos)
      throw config_error("--set " + assignment + ": byte " + std::to_string(bad) + " of the key is " +
                         hex_byte(static_cast<unsigned char>(key[bad])) + ", not UTF-8; expected UTF-8 text");
    YAML::Node value;
    try {
      value = YAML::Load(assignment.substr(eq + 1));
    } catch (const YAML::Exception& e) {
      throw config_error("--set " + assignment + ": value is not valid YAML: " + e.msg);
    }
    std::size_t values = 0;
    check_yaml_node(value, key, [&assignment](const YAML::Node&) { return "--set " + assignment; }, 0, values);
    const auto parts = split_key_path(key);
    if (!document || document.IsNull()) document.reset(YAML::Node(YAML::NodeType::Map));
    // Walk with reset(): assigning one yaml-cpp handle to another copies values into the document.
    YAML::Node node;
    node.reset(document);
    for (std::size_t i = 0; i < parts.size(); ++i) {
      const std::string& part = parts[i];
      if (part.empty()) throw config_error("--set " + assignment + ": empty key in '" + key + "'");
      const bool last = i + 1 == parts.size();
      if (node.IsSequence()) {
        if (!is_index(part))
          throw config_error("--set " + assignment + ": '" + part + "' must be a list index here");
        const std::size_t index = index_of(part);
        if (index > node.size())
          throw config_error("--set " + assignment + ": index " + part + " is past the end of a list of " +
                             std::to_string(node.size()));
        if (index == node.size()) node.push_back(YAML::Node(YAML::NodeType::Map));
        if (last) node[index] = value;
        else node.reset(node[index]);
      } else {
        if (!node.IsMap() && !node.IsNull())
          throw config_error("--set " + assignment + ": cannot set '" + part + "' inside a scalar");
        if (last) {
          node[part] = value;
        } else {
          YAML::Node child = node[part];
          if (!child || child.IsNull()) {
            node[part] = YAML::Node(is_index(parts[i + 1]) ? YAML::NodeType::Sequence : YAML::NodeType::Map);
            std::string prefix;
            for (std::size_t j = 0; j <= i; ++j) prefix += (j ? "." : "") + parts[j];
            source.created_by_overrides.emplace(prefix, assignment);
          }
          node.reset(node[part]);
        }
      }
    }
    source.overrides[key] = assignment;
  }
}

std::string location_of(const config_source& source, const std::string& key_path) {
  const std::string set = override_location(source, key_path);
  if (!set.empty()) return set;
  // A value set inside this key on the command line ("quantizers.0.options.x") is the likely culprit.
  for (const auto& [path, text] : source.overrides)
    if (path.rfind(key_path + ".", 0) == 0) return "--set " + text;
  YAML::Node node = source.document;
  for (const auto& part : split_key_path(key_path)) {
    if (!node) break;
    YAML::Node next;
    if (node.IsSequence() && is_index(part) && index_of(part) < node.size()) next = node[index_of(part)];
    else if (node.IsMap() && node[part]) next = node[part];
    if (!next) break;
    node.reset(next);
  }
  return mark_location(source, node);
}

YAML::Node resolve_config(const YAML::Node& document, const schema_node& schema, const config_source& source) {
  if (document && !document.IsNull() && !document.IsMap())
    throw config_error((source.file.empty() ? std::string("<config>") : source.file.string()) +
                       ": expected a map of keys at the top level");
  resolver r(source);
  return r.resolve(document, schema, "", document);
}

namespace {

bool is_short_scalar_list(const YAML::Node& n) {
  if (!n.IsSequence() || n.size() > 16) return false;
  for (const auto& e : n)
    if (!e.IsScalar()) return false;
  return true;
}

void emit(YAML::Emitter& out, const YAML::Node& n) {
  if (n.IsMap()) {
    if (n.size() == 0) out << YAML::Flow;
    out << YAML::BeginMap;
    for (const auto& entry : n) {
      out << YAML::Key << entry.first.as<std::string>() << YAML::Value;
      emit(out, entry.second);
    }
    out << YAML::EndMap;
  } else if (n.IsSequence()) {
    if (is_short_scalar_list(n)) out << YAML::Flow;
    out << YAML::BeginSeq;
    for (const auto& e : n) emit(out, e);
    out << YAML::EndSeq;
  } else if (n.IsScalar()) {
    out << n;
  } else {
    out << YAML::Null;
  }
}

std::string kind_name(const schema_node& n) {
  const std::string range = range_text(n, " ≥ ", " ≤ ");
  switch (n.kind) {
    case value_kind::map: return "map";
    case value_kind::list: {
      const bool scalar = n.element && n.element->kind != value_kind::map && n.element->kind != value_kind::list;
      return scalar ? "list of " + kind_name(*n.element) : "list";
    }
    case value_kind::string: return "string";
    case value_kind::integer: return "integer" + range;
    case value_kind::number: return "number" + range;
    case value_kind::boolean: return "bool";
    case value_kind::choice: return "one of " + join(n.choices, " \\| ");
    case value_kind::path: return "path";
    case value_kind::data_path: return "data path";
    case value_kind::scalar_map: return "map of options";
    case value_kind::free_map: return "map";
  }
  return "";
}

void markdown_rows(const schema_node& s, const std::string& key, std::ostringstream& out) {
  if (!key.empty()) {
    std::string def;
    if (s.required) def = "**required**";
    else if (s.default_value) {
      def = to_yaml_text(*s.default_value);
      while (!def.empty() && def.back() == '\n') def.pop_back();
      def = "`" + def + "`";
    }
    std::string help;  // a '|' would end the table cell
    for (const char c : s.help) help += c == '|' ? std::string("\\|") : std::string(1, c);
    out << "| `" << key << "` | " << kind_name(s) << " | " << def << " | " << help << " |\n";
  }
  if (s.kind == value_kind::map)
    for (const auto& [name, child] : s.fields) markdown_rows(child, key.empty() ? name : key + "." + name, out);
  // Lists of scalars are described in their own row; lists of maps list the element's keys.
  if (s.kind == value_kind::list && s.element && s.element->kind == value_kind::map) markdown_rows(*s.element, key + ".N", out);
}

}  // namespace

std::string to_yaml_text(const YAML::Node& node) {
  YAML::Emitter out;
  out.SetIndent(2);
  emit(out, node);
  std::string text = out.c_str();
  if (!text.empty() && text.back() != '\n') text += '\n';
  return text;
}

std::string schema_markdown(const schema_node& schema, const std::string& title) {
  std::ostringstream out;
  out << "## " << title << "\n\n| key | type | default | meaning |\n| --- | --- | --- | --- |\n";
  markdown_rows(schema, "", out);
  return out.str();
}

}  // namespace qexp
