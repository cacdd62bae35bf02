; Briefcase world (Pednault's ADL example, as in the IPC ADL benchmarks): moving the
; briefcase moves everything inside it, a conditional effect quantified over all portables.
(define (domain briefcase)
  (:requirements :typing :equality :negative-preconditions :conditional-effects)
  (:types location portable)
  (:predicates (is-at ?l - location)
               (at ?x - portable ?l - location)
               (in ?x - portable))

  (:action move
    :parameters (?from ?to - location)
    :precondition (and (is-at ?from) (not (= ?from ?to)))
    :effect (and (is-at ?to) (not (is-at ?from))
                 (forall (?x - portable)
                   (when (in ?x) (and (at ?x ?to) (not (at ?x ?from)))))))

  (:action put-in
    :parameters (?x - portable ?l - location)
    :precondition (and (not (in ?x)) (at ?x ?l) (is-at ?l))
    :effect (in ?x))

  (:action take-out
    :parameters (?x - portable)
    :precondition (in ?x)
    :effect (not (in ?x))))
