// The per-environment registry of IO operations in flight (io.h): environment teardown cancels them and
// waits for their callbacks before the scheduler they would wake is deleted, so no completion touches
// freed memory and no request is still active when Node closes a Worker's loop.
//
// Operations are started on the running fiber's carrier thread and complete on the loop thread; within
// one environment only the runner touches its registry, but environments (the main thread and each
// Worker) run in parallel, so the map of registries takes a lock.
#include <mutex>
#include <unordered_map>
#include <vector>

#include "io.h"

namespace spindle {

struct IoRegistry {
  IoOp* head = nullptr;
  size_t count = 0;
  bool draining = false;
  bool cancelling = false;  // inside io_drain's cancel loop: completion is reported after it
  void (*done)(void*) = nullptr;
  void* done_arg = nullptr;

  void link(IoOp& op) {
    op.prev_ = nullptr;
    op.next_ = head;
    if (head != nullptr) head->prev_ = &op;
    head = &op;
    ++count;
  }
  void unlink(IoOp& op) {
    if (op.prev_ != nullptr) {
      op.prev_->next_ = op.next_;
    } else {
      head = op.next_;
    }
    if (op.next_ != nullptr) op.next_->prev_ = op.prev_;
    op.prev_ = op.next_ = nullptr;
    --count;
  }
};

namespace {

std::mutex registries_lock;
std::unordered_map<const Scheduler*, IoRegistry>& registries() {
  static auto* map = new std::unordered_map<const Scheduler*, IoRegistry>();  // never destroyed: exit-safe
  return *map;
}

}  // namespace

void IoOp::track() {
  std::lock_guard<std::mutex> lock(registries_lock);
  registries()[&scheduler_].link(*this);
  tracked_ = true;
}

void IoOp::untrack() {
  void (*done)(void*) = nullptr;
  void* arg = nullptr;
  {
    std::lock_guard<std::mutex> lock(registries_lock);
    auto it = registries().find(&scheduler_);
    tracked_ = false;
    if (it == registries().end()) return;
    IoRegistry& reg = it->second;
    reg.unlink(*this);
    if (reg.count == 0 && reg.draining && !reg.cancelling) {
      done = reg.done;
      arg = reg.done_arg;
      registries().erase(it);
    }
  }
  if (done != nullptr) done(arg);
}

void io_drain(Scheduler* scheduler, void (*done)(void*), void* arg) {
  std::vector<IoOp*> ops;
  {
    std::lock_guard<std::mutex> lock(registries_lock);
    auto it = registries().find(scheduler);
    if (it == registries().end() || it->second.count == 0) {
      if (it != registries().end()) registries().erase(it);
    } else {
      IoRegistry& reg = it->second;
      reg.draining = true;
      reg.cancelling = true;
      reg.done = done;
      reg.done_arg = arg;
      for (IoOp* op = reg.head; op != nullptr; op = op->next_) ops.push_back(op);
    }
  }
  if (ops.empty()) {
    done(arg);
    return;
  }
  // cancel() of a threadpool request only queues its callback; an operation whose cancel() completes
  // at once leaves the registry meanwhile, and the completion is reported below rather than mid-loop.
  for (IoOp* op : ops) {
    bool still_tracked;
    {
      std::lock_guard<std::mutex> lock(registries_lock);
      still_tracked = op->tracked_;
    }
    if (still_tracked) op->cancel();
  }
  bool finished = false;
  {
    std::lock_guard<std::mutex> lock(registries_lock);
    auto it = registries().find(scheduler);
    it->second.cancelling = false;
    if (it->second.count == 0) {
      registries().erase(it);
      finished = true;
    }
  }
  if (finished) done(arg);
}

size_t io_in_flight(Scheduler* scheduler) {
  std::lock_guard<std::mutex> lock(registries_lock);
  auto it = registries().find(scheduler);
  return it == registries().end() ? 0 : it->second.count;
}

}  // namespace spindle
