// The trainer on a small budget: a tiny DistilBERT, a few hundred steps on a slice of SST-2 train.
// The loss must fall, two runs must agree bit for bit, and the saved folder must load in the
// inference model with the same logits as the trainable module.
#include <gtest/gtest.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "experiment.h"
#include "qexp/distilbert.h"
#include "qexp/errors.h"
#include "qexp/safetensors.h"
#include "qexp/tokenizer.h"
#include "test_support.h"
#include "train_config.h"
#include "trainer.h"
#include "trainer_model.h"

namespace qexp {
namespace {

namespace fs = std::filesystem;

fs::path sst2(const char* file) { return test::shared_dir() / "data" / "sst2" / file; }

// A tiny model and a short run: 300 steps of 32 sentences on the first 8,000 training rows
// (250 steps per epoch), checked on the first 200 dev sentences.
std::string tiny_config_text(std::int64_t max_steps = 300) {
  std::ostringstream y;
  y << "name: train_tiny_test\n"
       "kind: train\n"
       "data: { train: "
    << sst2("train.tsv").string() << ", dev: " << sst2("dev.tsv").string()
    << ", max_length: 32, train_limit: 8000, dev_limit: 200 }\n"
       "vocab: { size: 1500 }\n"
       "model: { dim: 32, n_layers: 2, n_heads: 2, hidden_dim: 64, max_position_embeddings: 64 }\n"
       "training: { epochs: 2, max_steps: "
    << max_steps
    << ", batch_size: 32, learning_rate: 0.003, warmup_fraction: 0.1, grad_clip: 1.0, eval_every: 100, "
       "log_every: 100 }\n"
       "threads: 1\n"
       "seed: 7\n";
  return y.str();
}

struct trained {
  train_result result;
  fs::path dir;
};

trained train_tiny(const test::temp_dir& tmp, const std::string& name, const std::vector<std::string>& overrides = {}) {
  const fs::path config_file = tmp.path() / "train_tiny.yaml";
  test::write_file(config_file, tiny_config_text());
  const auto experiment = load_experiment(config_file, overrides);
  EXPECT_EQ(experiment.kind->name, "train");
  const auto config = train_config_from(experiment.resolved, experiment.source);
  trained t;
  t.dir = tmp.path() / name;
  t.result = run_training(config, t.dir, experiment.resolved);
  return t;
}

double mean(const std::vector<double>& v, std::size_t begin, std::size_t end) {
  return std::accumulate(v.begin() + static_cast<std::ptrdiff_t>(begin), v.begin() + static_cast<std::ptrdiff_t>(end), 0.0) /
         static_cast<double>(end - begin);
}

// One run shared by the tests that only read its output.
class trained_tiny_model : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    tmp_ = new test::temp_dir();
    run_ = new trained(train_tiny(*tmp_, "a"));
  }
  static void TearDownTestSuite() {
    delete run_;
    delete tmp_;
  }
  static test::temp_dir* tmp_;
  static trained* run_;
};
test::temp_dir* trained_tiny_model::tmp_ = nullptr;
trained* trained_tiny_model::run_ = nullptr;

TEST_F(trained_tiny_model, loss_falls_and_dev_accuracy_beats_chance) {
  const auto& losses = run_->result.step_losses;
  ASSERT_EQ(losses.size(), 300u);
  const double first = mean(losses, 0, 30), last = mean(losses, losses.size() - 30, losses.size());
  EXPECT_NEAR(first, std::log(2.0), 0.1) << "an untrained binary classifier starts near ln 2";
  EXPECT_LT(last, first - 0.1) << "first 30 steps " << first << ", last 30 steps " << last;
  // 200 dev sentences (50% positive): 60% is three standard deviations above chance.
  EXPECT_GT(run_->result.best_dev_accuracy, 0.6);
}

TEST_F(trained_tiny_model, writes_a_hugging_face_folder_with_metrics_and_log) {
  for (const char* f : {"config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "metrics.json",
                        "train.log", "train_config.yaml"})
    EXPECT_TRUE(fs::is_regular_file(run_->dir / f)) << f;
  const auto tokenizer_config = nlohmann::json::parse(test::read_file(run_->dir / "tokenizer_config.json"));
  EXPECT_EQ(tokenizer_config.at("do_lower_case"), true);
  const auto config = distilbert_config::from_json_file(run_->dir / "config.json");
  EXPECT_EQ(config.dim, 32);
  EXPECT_EQ(config.n_layers, 2);
  EXPECT_EQ(config.vocab_size, 1500);
  EXPECT_EQ(config.max_position_embeddings, 64);
  EXPECT_EQ(config.id2label, (std::vector<std::string>{"NEGATIVE", "POSITIVE"}));

  const auto weights = safetensors_file::open(run_->dir / "model.safetensors");
  EXPECT_EQ(weights->metadata().at("format"), "pt");
  const std::vector<std::string> first{"distilbert.embeddings.word_embeddings.weight",
                                       "distilbert.embeddings.position_embeddings.weight",
                                       "distilbert.embeddings.LayerNorm.weight",
                                       "distilbert.embeddings.LayerNorm.bias",
                                       "distilbert.transformer.layer.0.attention.q_lin.weight"};
  const auto names = weights->names();
  ASSERT_GE(names.size(), first.size());
  EXPECT_EQ(std::vector<std::string>(names.begin(), names.begin() + 5), first);
  EXPECT_EQ(names.back(), "classifier.bias");
  EXPECT_EQ(names.size(), 4u + 2 * 16 + 4);  // embeddings, 16 per block, the two head Linears

  const auto metrics = nlohmann::json::parse(test::read_file(run_->dir / "metrics.json"));
  EXPECT_DOUBLE_EQ(metrics.at("best").at("dev_accuracy").get<double>(), run_->result.best_dev_accuracy);
  EXPECT_EQ(metrics.at("steps"), 300);
  EXPECT_EQ(metrics.at("evaluations").size(), 4u);  // steps 100, 200, 250 (epoch end), 300
  EXPECT_NE(test::read_file(run_->dir / "train.log").find("best dev accuracy"), std::string::npos);
}

TEST_F(trained_tiny_model, saved_folder_gives_the_trainable_modules_logits_and_the_best_accuracy) {
  auto inference = distilbert_classifier::from_folder(run_->dir);
  const auto tokenizer = wordpiece_tokenizer::from_model_folder(run_->dir);
  trainable_distilbert module(inference.config());
  {
    torch::NoGradGuard no_grad;
    const auto weights = safetensors_file::open(run_->dir / "model.safetensors");
    for (auto& [name, p] : module->hf_tensors()) p.copy_(weights->tensor(name));
  }
  module->eval();

  const auto dev = read_training_tsv(sst2("dev.tsv"), 200);
  std::int64_t correct = 0;
  for (std::size_t start = 0; start < dev.size(); start += 50) {
    std::vector<std::string> texts;
    std::vector<std::int64_t> labels;
    for (std::size_t i = start; i < start + 50; ++i) {
      texts.push_back(dev.sentences[i]);
      labels.push_back(dev.labels[i]);
    }
    const auto batch = tokenizer.encode_batch(texts, 32);  // padded: the masks matter
    const auto expected = [&] {
      torch::NoGradGuard no_grad;
      return module->forward(batch.input_ids, batch.attention_mask);
    }();
    const auto logits = inference.forward(batch.input_ids, batch.attention_mask);
    EXPECT_TRUE(at::allclose(logits, expected, 1e-4, 1e-5))
        << "max |difference| " << (logits - expected).abs().max().item<double>();
    EXPECT_TRUE(at::equal(logits.argmax(1), expected.argmax(1)));
    correct += logits.argmax(1).eq(at::tensor(labels, at::kLong)).sum().item<std::int64_t>();
  }
  // The saved checkpoint is the best one evaluated (a near-tie could flip one sentence).
  EXPECT_NEAR(static_cast<double>(correct) / 200.0, run_->result.best_dev_accuracy, 1.0 / 200.0 + 1e-12);
}

TEST(trainer, two_runs_agree_bit_for_bit_and_another_seed_does_not) {
  test::temp_dir tmp;
  // A shorter budget than the shared run: 60 steps, the best of two evaluations kept.
  const std::vector<std::string> short_run{"training.max_steps=60", "training.eval_every=30"};
  const auto a = train_tiny(tmp, "a", short_run);
  const auto b = train_tiny(tmp, "b", short_run);
  ASSERT_EQ(a.result.step_losses.size(), 60u);
  EXPECT_EQ(a.result.step_losses, b.result.step_losses);
  EXPECT_TRUE(test::read_file(a.dir / "model.safetensors") == test::read_file(b.dir / "model.safetensors"))
      << "same config, seed and threads must give the same weights";
  EXPECT_EQ(test::read_file(a.dir / "vocab.txt"), test::read_file(b.dir / "vocab.txt"));

  auto other_seed = short_run;
  other_seed.push_back("seed=8");
  const auto c = train_tiny(tmp, "c", other_seed);
  EXPECT_NE(c.result.step_losses, a.result.step_losses);
  EXPECT_FALSE(test::read_file(c.dir / "model.safetensors") == test::read_file(a.dir / "model.safetensors"));
}

TEST(train_config, rejects_heads_that_do_not_divide_dim_and_lengths_beyond_the_positions) {
  test::temp_dir tmp;
  const fs::path config_file = tmp.path() / "bad.yaml";
  test::write_file(config_file, tiny_config_text());
  auto load = [&](std::vector<std::string> overrides) {
    const auto e = load_experiment(config_file, overrides);
    return train_config_from(e.resolved, e.source);
  };
  EXPECT_NO_THROW(load({}));
  EXPECT_THROW(load({"model.n_heads=3"}), config_error);
  EXPECT_THROW(load({"data.max_length=65"}), config_error);
  EXPECT_THROW(load({"training.learing_rate=0.1"}), config_error);  // unknown key
  EXPECT_THROW(load({"vocab.file=no/such/vocab.txt"}), config_error);
}

// The trainer reads its data with read_sentence_tsv (tested in dataset_test.cpp), and needs rows.
TEST(read_training_tsv, splits_on_the_last_tab_and_names_bad_rows_and_empty_files) {
  test::temp_dir tmp;
  test::write_file(tmp.path() / "ok.tsv", "sentence\tlabel\na\ttab inside \t1\nplain \t0\n");
  const auto rows = read_training_tsv(tmp.path() / "ok.tsv");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows.sentences[0], "a\ttab inside ");
  EXPECT_EQ(rows.labels[0], 1);
  EXPECT_EQ(rows.labels[1], 0);
  EXPECT_EQ(read_training_tsv(tmp.path() / "ok.tsv", 1).size(), 1u);
  auto error_of = [&](const char* file, const char* content) -> std::string {
    test::write_file(tmp.path() / file, content);
    try {
      read_training_tsv(tmp.path() / file);
    } catch (const input_error& e) {
      return e.what();
    }
    return "no input_error";
  };
  const std::string bad_row = error_of("bad.tsv", "sentence\tlabel\nfine\t1\nno label here\n");
  EXPECT_NE(bad_row.find("bad.tsv:3"), std::string::npos) << bad_row;
  const std::string no_rows = error_of("header_only.tsv", "sentence\tlabel\n");
  EXPECT_NE(no_rows.find("header_only.tsv: no sentences after the header"), std::string::npos) << no_rows;
}

TEST(qexp_train_command, trains_a_config_and_refuses_other_kinds) {
  test::temp_dir tmp;
  const fs::path config_file = tmp.path() / "train_tiny.yaml";
  test::write_file(config_file, tiny_config_text(20));
  const auto out = tmp.path() / "model";
  const auto r = test::run_qexp("train " + config_file.string() + " --out " + out.string() + " --set training.eval_every=0");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("best dev accuracy"), std::string::npos) << r.output;
  EXPECT_TRUE(fs::is_regular_file(out / "model.safetensors"));
  // The trained folder works with the other commands.
  const auto predicted = test::run_command("echo 'a great , moving film .' | " + test::qexp_bin().string() +
                                           " predict --model " + out.string());
  EXPECT_EQ(predicted.exit_code, 0) << predicted.output;

  const auto dry = test::run_qexp("train " + config_file.string() + " --dry-run");
  EXPECT_EQ(dry.exit_code, 0) << dry.output;
  EXPECT_NE(dry.output.find("kind: train"), std::string::npos) << dry.output;

  const auto ptq = test::run_qexp("train " + (test::source_dir() / "configs" / "ptq_int8.yaml").string());
  EXPECT_EQ(ptq.exit_code, static_cast<int>(exit_code::config_error)) << ptq.output;
}

}  // namespace
}  // namespace qexp
