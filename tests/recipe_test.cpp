// Recipes and calibration: which site takes which rule, the per-site assignment text, and what
// the host feeds a calibrating plugin (a probe plugin records it) in float and sequential mode.
#include "qexp/recipe.h"

#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <set>

#include "calibration_data.h"
#include "qexp/errors.h"
#include "qexp/tokenizer.h"
#include "test_support.h"

namespace fs = std::filesystem;

namespace {

fs::path golden() { return qexp::test::shared_dir() / "golden/distilbert-tiny-random"; }

const qexp::plugin_registry& registry() {
  static const auto* r = new qexp::plugin_registry(qexp::plugin_registry::discover({QEXP_PROBE_PLUGIN_DIR}));
  return *r;
}

const qexp::distilbert_classifier& tiny() {
  static const auto* m = new qexp::distilbert_classifier(qexp::distilbert_classifier::from_folder(golden()));
  return *m;
}

qexp::recipe_rule rule(const std::string& plugin, std::vector<std::string> include,
                       std::map<std::string, std::string> options = {}) {
  qexp::recipe_rule r;
  r.plugin = plugin;
  r.layers.include = std::move(include);
  r.options = std::move(options);
  return r;
}

std::map<std::string, int> rule_of(const std::vector<qexp::site_assignment>& assignment) {
  std::map<std::string, int> out;
  for (const auto& a : assignment) out[a.target.name] = a.rule;
  return out;
}

TEST(recipe, each_site_takes_the_first_matching_rule_whose_plugin_handles_its_kind) {
  qexp::recipe r;
  r.label = "mixed";
  r.rules = {rule("dynamic-int8", {"*.ffn.*"}), rule("calibration-probe", {"*"}, {{"calibrate", "false"}}),
             rule("embedding-int8", {"*"})};
  r.rules[1].layers.exclude = {"*classifier"};
  const auto by_site = rule_of(qexp::assign_sites(r, tiny().sites(), registry()));
  ASSERT_EQ(by_site.size(), 2u + 6u * 2u + 2u);
  EXPECT_EQ(by_site.at("distilbert.transformer.layer.1.ffn.lin2"), 0);
  EXPECT_EQ(by_site.at("distilbert.transformer.layer.0.attention.q_lin"), 1);  // "*" after "*.ffn.*"
  EXPECT_EQ(by_site.at("distilbert.transformer.layer.0.attention.out_lin"), 1);
  // "*" in a Linear-only rule skips the tables, which fall to the table plugin's rule.
  EXPECT_EQ(by_site.at("distilbert.embeddings.word_embeddings"), 2);
  EXPECT_EQ(by_site.at("distilbert.embeddings.position_embeddings"), 2);
  EXPECT_EQ(by_site.at("classifier"), -1);
  EXPECT_EQ(by_site.at("pre_classifier"), -1);
}

TEST(recipe, a_rule_that_matches_no_site_is_a_config_error_naming_it) {
  qexp::recipe r;
  r.label = "shadowed";
  r.rules = {rule("dynamic-int8", {"*"}), rule("calibration-probe", {"*.ffn.*"})};
  r.rules[1].where = "x.yaml:9:7";
  try {
    qexp::assign_sites(r, tiny().sites(), registry());
    FAIL() << "expected a config_error";
  } catch (const qexp::config_error& e) {
    const std::string message = e.what();
    EXPECT_NE(message.find("x.yaml:9:7: rule 2 of 'shadowed'"), std::string::npos) << message;
    EXPECT_NE(message.find("matches no site"), std::string::npos) << message;
  }
  // A table-only plugin restricted to Linear names matches nothing either.
  r.rules = {rule("embedding-int8", {"*.ffn.*"})};
  EXPECT_THROW(qexp::assign_sites(r, tiny().sites(), registry()), qexp::config_error);
}

TEST(recipe, assignment_text_folds_block_numbers) {
  qexp::recipe r;
  r.label = "ffn";
  r.rules = {rule("dynamic-int8", {"*.ffn.lin1"})};
  const auto text = qexp::assignment_text(r, qexp::assign_sites(r, tiny().sites(), registry()));
  EXPECT_NE(text.find("rule 1: plugin 'dynamic-int8' include [*.ffn.lin1] -> 2 sites"), std::string::npos) << text;
  EXPECT_NE(text.find("distilbert.transformer.layer.{0..1}.ffn.lin1"), std::string::npos) << text;
  EXPECT_NE(text.find("fp32 (no rule) -> 14 sites"), std::string::npos) << text;
}

// Token rows of a few sentences of different lengths, as calibration sentences.
qexp::calibration_set probe_calibration(qexp::calibration_mode mode) {
  qexp::calibration_set set;
  set.batch_size = 3;
  set.mode = mode;
  at::manual_seed(5);
  for (int len : {5, 9, 3, 12, 7, 4, 10}) {
    std::vector<std::int64_t> ids{101};
    for (int i = 0; i < len; ++i) ids.push_back(1000 + (i * 37 + len * 11) % 500);
    ids.push_back(102);
    set.ids.push_back(ids);
  }
  return set;
}

struct probe_record {
  double rows, sum, finished, groups, seed;
};

probe_record record_of(const qexp::distilbert_classifier& model, const std::string& site) {
  struct capture final : qexp::tensor_writer {
    at::Tensor record;
    void add_tensor(const std::string& name, const at::Tensor& t) override {
      if (name.size() > 7 && name.compare(name.size() - 7, 7, ".record") == 0) record = t;
    }
  } out;
  model.linear(site).save(out, site);
  EXPECT_TRUE(out.record.defined()) << site;
  const float* r = out.record.data_ptr<float>();
  return {r[0], r[1], r[2], r[3], r[4]};
}

std::map<std::string, probe_record> calibrate_with_probe(qexp::calibration_mode mode) {
  const auto r = qexp::single_rule_recipe("calibration-probe");
  const auto set = probe_calibration(mode);
  const auto q = qexp::apply_recipe(tiny(), r, registry(), &set, 42);
  std::map<std::string, probe_record> out;
  for (const auto& name : q.model.linear_names()) out[name] = record_of(q.model, name);
  return out;
}

TEST(calibration, reaches_every_site_with_every_real_token_row_in_both_modes) {
  const auto set = probe_calibration(qexp::calibration_mode::float_inputs);
  double tokens = 0;
  for (const auto& ids : set.ids) tokens += static_cast<double>(ids.size());
  for (auto mode : {qexp::calibration_mode::float_inputs, qexp::calibration_mode::sequential}) {
    SCOPED_TRACE(qexp::to_string(mode));
    const auto records = calibrate_with_probe(mode);
    ASSERT_EQ(records.size(), 14u);
    for (const auto& [site, r] : records) {
      // The head reads one row per sentence ([CLS]); every other Linear reads every real token.
      const bool head = site == "pre_classifier" || site == "classifier";
      EXPECT_EQ(r.rows, head ? static_cast<double>(set.ids.size()) : tokens) << site;
      EXPECT_EQ(r.finished, 1.0) << site;
      // Per block: q/k/v, out_lin, lin1, lin2; then pre_classifier and classifier.
      EXPECT_EQ(r.groups, 2.0 * 4.0 + 2.0) << site;
      EXPECT_EQ(r.seed, 42.0) << site;
    }
  }
}

TEST(calibration, sequential_mode_feeds_each_block_the_quantized_blocks_outputs) {
  const auto floats = calibrate_with_probe(qexp::calibration_mode::float_inputs);
  const auto sequential = calibrate_with_probe(qexp::calibration_mode::sequential);
  // Block 0's q/k/v read the embeddings: nothing quantized lies before them.
  EXPECT_EQ(floats.at("distilbert.transformer.layer.0.attention.q_lin").sum,
            sequential.at("distilbert.transformer.layer.0.attention.q_lin").sum);
  // Block 1 and the head read what the (lossy) quantized blocks before them produce.
  for (const char* site : {"distilbert.transformer.layer.1.attention.q_lin", "distilbert.transformer.layer.1.ffn.lin2",
                           "pre_classifier"})
    EXPECT_NE(floats.at(site).sum, sequential.at(site).sum) << site;
}

TEST(calibration, a_calibrating_plugin_without_data_fails_before_preparing) {
  const auto r = qexp::single_rule_recipe("calibration-probe");
  EXPECT_THROW(qexp::apply_recipe(tiny(), r, registry(), nullptr), qexp::config_error);
  qexp::calibration_set empty;
  EXPECT_THROW(qexp::apply_recipe(tiny(), r, registry(), &empty), qexp::config_error);
  // The same plugin told not to calibrate needs none.
  EXPECT_NO_THROW(qexp::apply_recipe(tiny(), qexp::single_rule_recipe("calibration-probe", {{"calibrate", "false"}}),
                                     registry(), nullptr));
}

TEST(calibration, sentences_are_drawn_from_the_calibration_file_by_seed) {
  qexp::test::temp_dir dir;
  std::string train = "sentence\tlabel\n", dev = "sentence\tlabel\n";
  for (int i = 0; i < 20; ++i) train += "the train sentence number " + std::to_string(i) + " is fine\t1\n";
  for (int i = 0; i < 20; ++i) dev += "a dev line " + std::to_string(i) + "\t0\n";
  qexp::test::write_file(dir.path() / "train.tsv", train);
  qexp::test::write_file(dir.path() / "dev.tsv", dev);
  const auto tokenizer = qexp::wordpiece_tokenizer::from_model_folder(golden());
  std::set<std::vector<std::int64_t>> train_ids;
  for (int i = 0; i < 20; ++i)
    train_ids.insert(tokenizer.encode_ids("the train sentence number " + std::to_string(i) + " is fine", 64));
  qexp::calibration_settings settings;
  settings.data_path = dir.path() / "train.tsv";
  settings.sentences = 5;
  settings.batch_size = 2;
  settings.seed = 1;
  const auto a = qexp::load_calibration_set(settings, tokenizer, 64);
  ASSERT_EQ(a.ids.size(), 5u);
  EXPECT_EQ(std::set<std::vector<std::int64_t>>(a.ids.begin(), a.ids.end()).size(), 5u) << "drawn twice";
  for (const auto& ids : a.ids) EXPECT_TRUE(train_ids.count(ids)) << "not a train sentence";
  EXPECT_EQ(qexp::load_calibration_set(settings, tokenizer, 64).ids, a.ids) << "not reproducible";
  settings.seed = 2;
  EXPECT_NE(qexp::load_calibration_set(settings, tokenizer, 64).ids, a.ids);
  settings.sentences = 1000;
  EXPECT_EQ(qexp::load_calibration_set(settings, tokenizer, 64).ids.size(), 20u);
}

TEST(plugin_options, ranges_and_paths_are_checked_and_paths_resolve_against_the_config_folder) {
  qexp::test::temp_dir dir;
  qexp::test::write_file(dir.path() / "notes.txt", "x");
  const auto values = registry().resolve_options("calibration-probe", {{"notes", "notes.txt"}}, "c.yaml:3:5", dir.path());
  EXPECT_EQ(values.get_string("notes"), (dir.path() / "notes.txt").string());
  EXPECT_EQ(registry().resolve_options("calibration-probe", {}).get_string("notes"), "");  // not set
  try {
    registry().resolve_options("calibration-probe", {{"notes", "missing.txt"}}, "c.yaml:3:5", dir.path());
    FAIL() << "a missing path was accepted";
  } catch (const qexp::config_error& e) {
    EXPECT_NE(std::string(e.what()).find((dir.path() / "missing.txt").string() + " does not exist"), std::string::npos)
        << e.what();
  }
  for (const char* bad : {"1", "16"}) {
    try {
      registry().resolve_options("calibration-probe", {{"levels", bad}}, "c.yaml:3:5");
      FAIL() << "levels=" << bad << " was accepted";
    } catch (const qexp::config_error& e) {
      EXPECT_NE(std::string(e.what()).find("c.yaml:3:5: plugin 'calibration-probe': option 'levels' expects an integer "
                                            "in [2, 15], got '" + std::string(bad) + "'"),
                std::string::npos)
          << e.what();
    }
  }
  EXPECT_EQ(registry().resolve_options("calibration-probe", {{"levels", "15"}}).get_int("levels"), 15);
}

std::string probe_config(const fs::path& dir, const std::string& calibration_data) {
  const std::string text = "name: probe\nmodel: { path: " + golden().string() + " }\ndata: { path: " +
                           (dir / "dev.tsv").string() + ", max_length: 32 }\ncalibration: { data: " +
                           calibration_data + ", sentences: 4 }\nquantizers:\n"
                           "  - rules:\n"
                           "      - { plugin: calibration-probe, layers: { include: [\"*.ffn.*\"] } }\n"
                           "      - { plugin: dynamic-int8, layers: { exclude: [\"*classifier\"] } }\n";
  qexp::test::write_file(dir / "probe.yaml", text);
  return (dir / "probe.yaml").string();
}

TEST(calibration, the_evaluation_file_is_refused_as_calibration_data) {
  qexp::test::temp_dir dir;
  qexp::test::write_file(dir.path() / "dev.tsv", "sentence\tlabel\ngood\t1\nbad\t0\n");
  qexp::test::write_file(dir.path() / "train.tsv", "sentence\tlabel\nfine\t1\nawful\t0\n");
  const std::string plugin_path = std::string("--plugin-path ") + QEXP_PROBE_PLUGIN_DIR + " ";
  auto same = qexp::test::run_qexp(plugin_path + "validate " + probe_config(dir.path(), (dir.path() / "dev.tsv").string()));
  EXPECT_EQ(same.exit_code, 3) << same.output;
  EXPECT_NE(same.output.find("is the evaluation file"), std::string::npos) << same.output;
  auto other = qexp::test::run_qexp(plugin_path + "validate " + probe_config(dir.path(), (dir.path() / "train.tsv").string()));
  EXPECT_EQ(other.exit_code, 0) << other.output;
  // validate and --dry-run say which sites each rule got.
  EXPECT_NE(other.output.find("rule 1: plugin 'calibration-probe' include [*.ffn.*] -> 4 sites"), std::string::npos)
      << other.output;
  auto dry = qexp::test::run_qexp(plugin_path + "run " + probe_config(dir.path(), (dir.path() / "train.tsv").string()) +
                                  " --dry-run");
  EXPECT_EQ(dry.exit_code, 0) << dry.output;
  EXPECT_NE(dry.output.find("#   rule 2: plugin 'dynamic-int8' exclude [*classifier] -> 8 sites"), std::string::npos)
      << dry.output;
  // An option out of its range fails validation, before anything runs: a config error (exit 3).
  auto range = qexp::test::run_qexp(plugin_path + "validate " + probe_config(dir.path(), (dir.path() / "train.tsv").string()) +
                                    " --set quantizers.0.rules.0.options.levels=99");
  EXPECT_EQ(range.exit_code, 3) << range.output;
  EXPECT_NE(range.output.find("option 'levels' expects an integer in [2, 15], got '99'"), std::string::npos) << range.output;
}

}  // namespace
