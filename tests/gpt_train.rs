//! Training a GPT through the Trainer (lavapipe in CI): a tiny one overfits a fixed paragraph,
//! with evaluations on the stated schedule; a run with clipping and a learning-rate schedule
//! resumes bit-identically from saved state; the embedded corpus is what data/README.md says;
//! and bad text input (an empty file, a context longer than the text, a token the model
//! cannot predict) is a typed error.

mod common;

use std::io::Read;
use std::sync::Arc;
use wgmem::nn::{GptConfig, Module, generate};
use wgmem::optim::{Adam, ClipGradNorm};
use wgmem::text::{ByteTokenizer, Split, TextCorpus, TokenWindows};
use wgmem::{Context, Error, MemoryConfig, Trainer, TrainerConfig};

const PARAGRAPH: &str = "In the beginning God created the heaven and the earth. And the earth \
was without form, and void; and darkness was upon the face of the deep. And the Spirit of God \
moved upon the face of the waters. And God said, Let there be light: and there was light.";

fn tiny(ctx: &Arc<Context>, context: usize) -> wgmem::nn::Sequential {
    let config = GptConfig {
        vocab: 256,
        layers: 1,
        heads: 2,
        width: 32,
        context,
        dropout: 0.0,
        seed: 3,
    };
    let mut model = config.build(ctx).unwrap();
    // The count the example prints is the model's (the tied head adds no parameter).
    let held: usize = model.parameters().iter().map(|p| p.value.len()).sum();
    assert_eq!(held, config.parameter_count());
    model
}

#[test]
fn a_tiny_gpt_overfits_a_paragraph() {
    const STEPS: u64 = 60;
    let ctx = Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap();
    let context = 21; // not a multiple of any tile
    let tokens = ByteTokenizer.encode(PARAGRAPH.as_bytes());
    let windows = TokenWindows::new(tokens, context, context).unwrap();
    let held = windows.first(4);
    let config = TrainerConfig {
        batch_size: 11,
        seed: 1,
        ..TrainerConfig::default()
    };
    let optimizer = ClipGradNorm::new(Box::new(Adam::adamw(1e-2, 0.0)), 1.0).unwrap();
    let mut trainer = Trainer::new(
        Arc::clone(&ctx),
        tiny(&ctx, context),
        Box::new(optimizer),
        config,
    )
    .unwrap();
    let before = trainer.evaluate(&held).unwrap();
    let mut losses = Vec::new();
    let evals = trainer
        .train_steps_evaluating(&windows, &held, STEPS, 20, |s| losses.push(s.loss), |_| {})
        .unwrap();
    eprintln!(
        "loss {:.3} -> {:.3}; evaluations {:?}",
        losses[0],
        losses.last().unwrap(),
        evals
    );
    // Evaluated before the first step, after every 20, and after the last.
    assert_eq!(
        evals.iter().map(|e| e.step).collect::<Vec<_>>(),
        [0, 20, 40, 60]
    );
    assert_eq!((evals[0].loss, evals[0].accuracy), before);
    // From the uniform guess, ln 256 = 5.55: the first loss is near it.
    assert!(
        (losses[0] - 256f32.ln()).abs() < 0.5,
        "first loss {}",
        losses[0]
    );
    // A 2-layer, width-24 model memorises the 252-byte paragraph: 0.5 nats per byte is far
    // below any model of English (about 1.5 at this scale) and far above what it reaches.
    let last = evals.last().unwrap();
    assert!(last.loss < 0.6, "held-out (memorised) loss {}", last.loss);
    assert!(
        *losses.last().unwrap() < 0.5,
        "train loss {:?}",
        losses.last()
    );
    assert!(last.accuracy > 0.8, "accuracy {}", last.accuracy);
    // And it says the paragraph back: greedy generation from each trained window gives the
    // byte that follows it (the windows are aligned to the position table as in training).
    let bytes = PARAGRAPH.as_bytes();
    let mut said = String::new();
    let mut right = 0;
    for start in (0..bytes.len() - context).step_by(context) {
        let prompt = ByteTokenizer.encode(&bytes[start..start + context]);
        let next = generate(trainer.model(), &ctx, &prompt, context, 1, 0.0, 0).unwrap();
        said += &ByteTokenizer.decode(&next).unwrap();
        right += usize::from(next == [u32::from(bytes[start + context])]);
    }
    assert!(
        right >= 9,
        "{right} of 11 windows continued right: {said:?}"
    );
}

#[test]
fn the_embedded_corpus_is_as_data_readme_says() {
    let gz = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/data/kjv.txt.gz")).unwrap();
    let mut text = Vec::new();
    flate2::read::GzDecoder::new(&gz[..])
        .read_to_end(&mut text)
        .unwrap();
    assert_eq!(text.len(), 4_298_239);
    assert!(text.is_ascii());
    assert!(text.starts_with(b"\nGenesis 1\n\n  1 In the beginning God created"));
    let corpus = TextCorpus::from_bytes(&text).unwrap();
    assert_eq!(corpus.tokens(Split::Train).len(), 3_868_416);
    assert_eq!(corpus.tokens(Split::Validation).len(), 429_823);
    let val = ByteTokenizer
        .decode(corpus.tokens(Split::Validation))
        .unwrap();
    assert!(
        val.starts_with("d said unto me, Brother Saul"),
        "{}",
        &val[..40]
    );
    // The example's windows: one every 256 bytes, each with its 257th byte as the last target.
    let w = corpus.windows(Split::Train, 256, 256).unwrap();
    assert_eq!(w.len(), (3_868_416 - 257) / 256 + 1);
    assert_eq!(w.targets(3)[..255], w.inputs(3)[1..]);
}

#[test]
fn bad_text_input_is_a_typed_error() {
    let dir = std::env::temp_dir().join(format!("wgmem-gpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let empty = dir.join("empty.txt");
    std::fs::write(&empty, b"").unwrap();
    match TextCorpus::from_file(&empty) {
        Err(Error::InvalidArgument { what, reason }) => {
            assert_eq!(what, "text file");
            assert!(
                reason.contains("empty.txt") && reason.contains("0 bytes"),
                "{reason}"
            );
        }
        other => panic!("an empty file: {other:?}"),
    }
    assert!(matches!(
        TextCorpus::from_file(dir.join("missing.txt")),
        Err(Error::Io(_))
    ));
    // A text too short for the context: the split and the sizes are named.
    let short = dir.join("short.txt");
    std::fs::write(&short, PARAGRAPH).unwrap();
    let corpus = TextCorpus::from_file(&short).unwrap();
    match corpus.windows(Split::Validation, 64, 64) {
        Err(Error::InvalidArgument { what, reason }) => {
            assert_eq!(what, "text split");
            assert!(
                reason.contains("Validation") && reason.contains("65"),
                "{reason}"
            );
        }
        other => panic!("a context longer than the split: {other:?}"),
    }
    std::fs::remove_dir_all(&dir).unwrap();
    // A token the model cannot predict is a typed error at the step, not a NaN loss.
    let ctx = Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap();
    let windows = TokenWindows::new(vec![1u32, 2, 3, 300, 4, 5], 4, 1).unwrap();
    let mut trainer = Trainer::new(
        Arc::clone(&ctx),
        tiny(&ctx, 4),
        Box::new(Adam::new(1e-3)),
        TrainerConfig::default(),
    )
    .unwrap();
    match trainer.train_step(&windows) {
        Err(Error::InvalidArgument { what, reason }) => {
            assert_eq!(what, "label");
            assert!(
                reason.contains("300") && reason.contains("256 outputs"),
                "{reason}"
            );
        }
        other => panic!("token 300 for a vocabulary of 256: {other:?}"),
    }
    assert_eq!(trainer.report().steps, 0);
}

#[test]
fn a_gpt_run_resumes_bit_identically_with_its_schedule() {
    use wgmem::optim::{LrSchedule, Scheduled};
    let ctx = Context::new(common::gpu_backend(), MemoryConfig::default()).unwrap();
    let context = 9;
    let windows =
        TokenWindows::new(ByteTokenizer.encode(PARAGRAPH.as_bytes()), context, 5).unwrap();
    let run = || {
        let schedule = LrSchedule::warmup_cosine(1e-2, 1e-3, 2, 6).unwrap();
        let clipped = ClipGradNorm::new(Box::new(Adam::adamw(1e-2, 0.1)), 0.5).unwrap();
        let config = TrainerConfig {
            batch_size: 16,
            seed: 4,
            ..TrainerConfig::default()
        };
        let optimizer = Box::new(Scheduled::new(Box::new(clipped), schedule));
        Trainer::new(Arc::clone(&ctx), tiny(&ctx, context), optimizer, config).unwrap()
    };
    let params = |t: &mut Trainer| -> Vec<Vec<f32>> {
        t.model()
            .parameters()
            .iter()
            .map(|p| p.value.to_vec().unwrap())
            .collect()
    };
    let mut whole = run();
    whole.train_steps(&windows, 6, |_| {}).unwrap();
    let path = std::env::temp_dir().join(format!("wgmem-gpt-{}.state", std::process::id()));
    let mut first = run();
    first.train_steps(&windows, 3, |_| {}).unwrap();
    first.save_state(&path).unwrap();
    let mut second = run();
    second.load_state(&path).unwrap();
    // The schedule resumes at step 3: the rate of the next update is the schedule's at 3.
    assert_eq!(
        second.optimizer().learning_rate(),
        first.optimizer().learning_rate()
    );
    assert_ne!(
        second.optimizer().learning_rate(),
        run().optimizer().learning_rate()
    );
    second.train_steps(&windows, 3, |_| {}).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert_eq!(params(&mut second), params(&mut whole));
}
