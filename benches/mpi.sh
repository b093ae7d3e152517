#!/usr/bin/env bash
# Data parallel over MPI on the device machine (nvidia-h200-x2): the exchange stage by stage,
# then the MLP training step on 1 GPU and on 2 (with and without ZeRO-1). See BENCHMARKS.md.
#
# Here (build):   bash benches/mpi.sh --build
#   builds `train` (feature mpi) and the `exchange` bench into .dev/, and downloads Debian's
#   Open MPI packages into .mpi/ if missing. Then through the device tool, kind nvidia-h200-x2,
#   carry [".gl", ".dev", ".mpi"]:
# There (run):    bash benches/mpi.sh [extra train flags]
#   (issue 21's measurement in one command: the exchange stage by stage and its MCA sweep,
#   then the step on 1 GPU and on 2: overlapped, not overlapped, f16 wire, ZeRO-1.)
# Here, CPU only: bash benches/mpi.sh --cpu
#   the same exchange bench and MCA sweep on 2 ranks of this machine's CPU, lavapipe for the
#   GPU (dev profile, wgmem and its dependencies at opt-level 2): CPU figures, not GPU ones.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Open MPI 4.1 settings swept: the all-reduce algorithm of coll/tuned (0: its own
# decision by message size; 3 recursive doubling, 4 ring, 5 segmented ring, 6 Rabenseifner)
# and vader's single-copy mechanism for large messages (cma: process_vm_readv; none: two
# copies through the shared-memory FIFO; xpmem needs its kernel module).
mca_sweep() {
    local runner=$1 bench=$2
    shift 2
    for mech in cma none; do
        for alg in 0 3 4 5 6; do
            echo "== exchange: vader single copy $mech, all-reduce algorithm $alg"
            $runner 2 --mca btl_vader_single_copy_mechanism "$mech" \
                --mca coll_tuned_use_dynamic_rules 1 --mca coll_tuned_allreduce_algorithm "$alg" \
                "$bench" "$@" --mpi-only | grep -E "^\| [0-9]"
        done
    done
}

if [[ "${1:-}" == "--cpu" ]]; then
    # wgmem itself optimized too: its host loops (the f16 sum) are 10-20x slower unoptimized.
    cargo build --features mpi --bench exchange --config 'profile.dev.package.wgmem.opt-level=2' \
        --config 'profile.dev.package.wgmem.debug-assertions=false' \
        --config 'profile.dev.package.wgmem.overflow-checks=false'
    bench="$(ls -t target/debug/deps/exchange-* | grep -v '\.d$' | head -1)"
    export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1
    cpu_run() {
        local n=$1
        shift
        mpirun -n "$n" --bind-to none --mca pml ob1 --mca btl self,vader "$@" 2>&1 | grep -v XDG
    }
    nproc
    date -u
    echo "== exchange, stage by stage (CPU, lavapipe)"
    cpu_run 2 "$bench" --small --hidden 1024 --layers 4 --buckets 1,8,32
    mca_sweep cpu_run "$bench" --small --hidden 1024 --layers 4 --buckets 1,8,32
    exit 0
fi

if [[ "${1:-}" == "--build" ]]; then
    mkdir -p .dev .mpi
    cargo build --release --features mpi --example train --bench exchange
    cp target/release/examples/train .dev/train_mpi
    cp "$(ls -t target/release/deps/exchange-* | grep -v '\.d$' | head -1)" .dev/exchange
    strip .dev/train_mpi .dev/exchange
    if ! ls .mpi/libopenmpi3_*.deb >/dev/null 2>&1; then
        (cd .mpi && apt-get download openmpi-bin openmpi-common libopenmpi3 libpmix2 libhwloc15 \
            libevent-core-2.1-7 libevent-pthreads-2.1-7 libfabric1 libucx0 libibverbs1 librdmacm1 \
            libnl-3-200 libnl-route-3-200 libpsm2-2 libpsm-infinipath1 libnuma1 libmunge2 libgfortran5)
    fi
    ls -la .dev .mpi
    exit 0
fi

for f in .gl/*.deb; do dpkg -x "$f" /; done
ldconfig
export VK_DRIVER_FILES=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json WGMEM_BACKEND=vulkan
# Open MPI from .mpi/, away from the image's own (a different PMIx under /usr).
P=/opt/dmpi
for f in .mpi/*.deb; do dpkg -x "$f" $P; done
L=$P/usr/lib/x86_64-linux-gnu
export LD_LIBRARY_PATH=$L:$L/openmpi/lib PATH=$P/usr/bin:$PATH OPAL_PREFIX=$P/usr \
    OMPI_MCA_mca_base_component_path=$L/openmpi/lib/openmpi3 \
    PMIX_MCA_mca_base_component_path=$L/pmix2/lib/pmix \
    OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
run() {
    local n=$1
    shift
    mpirun -n "$n" --bind-to none --mca pml ob1 --mca btl self,vader -x LD_LIBRARY_PATH \
        -x VK_DRIVER_FILES -x WGMEM_BACKEND -x OPAL_PREFIX "$@" 2>&1 | grep -v XDG
}
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
nproc
date -u
echo "== exchange, stage by stage"
run 2 ./.dev/exchange --buckets 2,8,32
mca_sweep run ./.dev/exchange --buckets 2,8,32
B="--hidden 4096 --layers 8 --epochs 1"
for per_rank in 1024 "${PER_RANK_EXTRA:-4096}"; do
    [[ -z "$per_rank" ]] && continue
    S="--synthetic $((16 * per_rank))"
    echo "== train, $per_rank samples per GPU: 1 GPU"
    run 1 ./.dev/train_mpi $B $S --batch-size "$per_rank" "$@" | grep -E "step \(after|optimizer state|peak"
    for mode in "" --no-overlap "--grad-compress f16" "--grad-compress f16-ef" --zero1; do
        echo "== train, $per_rank samples per GPU: 2 GPUs $mode"
        # shellcheck disable=SC2086
        run 2 ./.dev/train_mpi $B $S --batch-size $((2 * per_rank)) $mode "$@" |
            grep -E "step \(after|gradient exchange|rank |^ +[01] \||optimizer state"
    done
done
